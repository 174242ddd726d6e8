/**
 * The recovery settings as PostgreSQL itself reads them: a real data
 * directory (initdb), the block appended by writeRecoverySetup, and
 * `postgres -C <setting>`, which loads the configuration files with all of
 * PostgreSQL's checks and prints the final value of a setting. The
 * restore_command PostgreSQL would run is then run through /bin/sh.
 */
import test from 'ava';
import { appendFile, chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AUTO_CONF, RECOVERY_SIGNAL, writeRecoverySetup } from '../../../agent/restore/recovery.ts';
import { parseRecoveryOptions, type RecoveryOptions, recoveryConfigBlock } from '../../../core/restore/recovery-config.ts';
import { exec, execOk } from '../../../local/testkit/exec.ts';
import { pgProgram } from '../../../local/testkit/pgbin.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { asPostgres, childEnv, postgresUser, runningAsRoot } from '../../../local/testkit/users.ts';

let pgdata: string;
let base: string;
let pristineAutoConf: string;
let cleanup: () => Promise<void>;

test.before(async () => {
  const dir = await makeTempDir('recovery', { owner: 'postgres' });
  cleanup = dir.cleanup;
  base = dir.path;
  pgdata = path.join(base, 'data');
  const [file, args] = asPostgres(pgProgram('initdb'), ['-D', pgdata, '--no-sync', '-U', 'postgres']);
  await execOk(file, args, { env: await childEnv({}, true) });
  pristineAutoConf = await readFile(path.join(pgdata, AUTO_CONF), 'utf8');
});
test.after.always(async () => {
  await cleanup?.();
});

/** Give the files root wrote to the postgres user, as an operator would before starting the server. */
async function handOver(...files: string[]) {
  if (!runningAsRoot()) return;
  const pg = await postgresUser();
  for (const f of files) await chown(f, pg.uid, pg.gid);
}

/** `postgres -C name` for each name: the values PostgreSQL ends up with, or its complaint. */
async function settings(names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const [file, args] = asPostgres(pgProgram('postgres'), ['-D', pgdata, '-C', name]);
    const r = await exec(file, args, { env: await childEnv({}, true) });
    if (r.code !== 0) throw new Error(`postgres -C ${name} failed: ${r.stderr.trim()}`);
    out[name] = r.stdout.replace(/\n$/, '');
  }
  return out;
}

/** What PostgreSQL does to restore_command before handing it to the shell (%f, %p, %%). */
function expandPercent(command: string, file: string, dest: string): string {
  return command.replace(/%([fp%])/g, (_m, c: string) => (c === 'f' ? file : c === 'p' ? dest : '%'));
}

// A stale target left in the source's postgresql.auto.conf by an earlier restore:
// PostgreSQL would refuse two targets unless the block resets it first.
const STALE = "recovery_target_time = '2020-01-01 00:00:00+00'\nrecovery_target_action = 'shutdown'\n";

const NAMES = [
  'recovery_target',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_time',
  'recovery_target_xid',
  'recovery_target_inclusive',
  'recovery_target_timeline',
  'recovery_target_action',
];

const cases: { name: string; options: RecoveryOptions; expected: Record<string, string> }[] = [
  { name: 'the end of the archive', options: { recovery: true }, expected: {} },
  {
    name: 'a time with a negative offset, exclusive',
    options: { targetTime: '2024-05-01T12:30:00.123456-03:30', targetExclusive: true },
    expected: { recovery_target_time: '2024-05-01 12:30:00.123456-03:30', recovery_target_inclusive: 'off' },
  },
  {
    name: 'a time in UTC',
    options: { targetTime: '2024-05-01 12:30:00Z', targetAction: 'promote' },
    expected: { recovery_target_time: '2024-05-01 12:30:00+00:00', recovery_target_action: 'promote' },
  },
  {
    name: 'an lsn on timeline 3',
    options: { targetLsn: '16/b374d848', targetTimeline: '3' },
    expected: { recovery_target_lsn: '16/B374D848', recovery_target_timeline: '3' },
  },
  {
    name: 'a restore point named with quotes and a backslash',
    options: { targetName: `it's "done" \\ 100%`, targetAction: 'shutdown' },
    expected: { recovery_target_name: `it's "done" \\ 100%`, recovery_target_action: 'shutdown' },
  },
  {
    name: 'consistency, on the current timeline',
    options: { targetImmediate: true, targetTimeline: 'current' },
    expected: { recovery_target: 'immediate', recovery_target_timeline: 'current' },
  },
];
const DEFAULTS: Record<string, string> = {
  recovery_target: '',
  recovery_target_lsn: '',
  recovery_target_name: '',
  recovery_target_time: '',
  recovery_target_xid: '',
  recovery_target_inclusive: 'on',
  recovery_target_timeline: 'latest',
  recovery_target_action: 'pause',
};

for (const { name, options, expected } of cases) {
  test.serial(`PostgreSQL accepts the recovery settings for ${name}, over stale ones from the source`, async (t) => {
    const conf = path.join(pgdata, AUTO_CONF);
    await writeFile(conf, pristineAutoConf + STALE.trimEnd()); // and no final newline
    await handOver(conf);
    const block = recoveryConfigBlock({
      plan: parseRecoveryOptions(options)!,
      repoUrl: 'file:///srv/repo',
      gcwalCommand: 'gcwal',
      backupName: 'base_000000010000000000000004',
    });
    await writeRecoverySetup(pgdata, block);
    await handOver(conf, path.join(pgdata, RECOVERY_SIGNAL));
    t.deepEqual(await settings(NAMES), { ...DEFAULTS, ...expected });
    t.is(await readFile(path.join(pgdata, RECOVERY_SIGNAL), 'utf8'), '');
    t.is(await readFile(conf, 'utf8'), `${pristineAutoConf}${STALE}${block}`);
  });
}

test.serial('the restore_command PostgreSQL reads runs gcwal with the repository, through quotes, spaces and percent signs', async (t) => {
  const binDir = path.join(base, "gc'wal bin 50%");
  await mkdir(binDir, { recursive: true });
  await chmod(binDir, 0o755);
  const record = path.join(base, 'invocation.txt');
  const script = path.join(binDir, "gcwal it's");
  // Stands in for gcwal: records the repository it was given and its arguments.
  await writeFile(script, `#!/bin/sh\nprintf '%s\\n' "$GCWAL_REPO" "$@" > '${record}'\n`, { mode: 0o755 });
  const repo = "file:///srv/o'brien backups/100%/a\\b";

  const conf = path.join(pgdata, AUTO_CONF);
  await writeFile(conf, pristineAutoConf);
  await handOver(conf);
  await writeRecoverySetup(
    pgdata,
    recoveryConfigBlock({ plan: parseRecoveryOptions({ recovery: true })!, repoUrl: repo, gcwalCommand: script, backupName: 'base_000000010000000000000004' }),
  );
  await handOver(conf, path.join(pgdata, RECOVERY_SIGNAL));

  const { restore_command: command } = await settings(['restore_command']);
  const shell = expandPercent(command, '000000010000000000000005', 'pg_wal/RECOVERYXLOG');
  const r = await exec('/bin/sh', ['-c', shell], { env: await childEnv(), cwd: pgdata });
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(record, 'utf8'), `${repo}\nwal-fetch\n000000010000000000000005\npg_wal/RECOVERYXLOG\n`);
});

test.serial('recovery settings go into a new postgresql.auto.conf when the backup has none', async (t) => {
  const dir = await makeTempDir('recovery-new');
  t.teardown(dir.cleanup);
  await writeRecoverySetup(dir.path, "restore_command = 'x'\n");
  t.is(await readFile(path.join(dir.path, AUTO_CONF), 'utf8'), "restore_command = 'x'\n");
  t.is((await stat(path.join(dir.path, AUTO_CONF))).mode & 0o777, 0o600);
  await appendFile(path.join(dir.path, AUTO_CONF), 'x'); // no final newline now
  await writeRecoverySetup(dir.path, 'y = 1\n');
  t.is(await readFile(path.join(dir.path, AUTO_CONF), 'utf8'), "restore_command = 'x'\nx\ny = 1\n");
});
