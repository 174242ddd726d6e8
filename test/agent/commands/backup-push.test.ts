/**
 * `gcwal backup-push` against real PostgreSQL 15: it refuses a primary that
 * does not archive, never waits for ever for WAL that is not being archived,
 * on a standby waits until the primary has archived the WAL the backup needs,
 * and takes no password on the command line.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { missingWal } from '../../../agent/backup/archive-wait.ts';
import { main } from '../../../agent/main.ts';
import { listBackups } from '../../../core/backup/list.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { parseLsn } from '../../../core/wal/lsn.ts';
import { segmentRange } from '../../../core/wal/name.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { installAgent } from '../../../local/testkit/install.ts';
import { pgProgram } from '../../../local/testkit/pgbin.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { asPostgres, childEnv, runningAsRoot } from '../../../local/testkit/users.ts';

let work: TempDir;
test.before(async () => {
  work = await makeTempDir('backup-push-cmd', { owner: 'postgres' });
});
test.after.always(async () => {
  await work?.cleanup();
});

let repos = 0;
/** A file:// repository created for `cluster` (as gcwal repo-create does), owned by postgres so that its wal-push can write too. */
async function repositoryFor(cluster: Cluster): Promise<{ url: string; storage: FileStorage }> {
  const dir = path.join(work.path, `repo-${++repos}`);
  await mkdir(dir);
  const url = pathToFileURL(dir).href;
  const storage = new FileStorage(url);
  const [row] = await cluster.query<{ id: string; bytes: string }>(
    "SELECT system_identifier::text AS id, (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS bytes FROM pg_control_system()",
  );
  await createRepositoryIdentity(storage, { systemIdentifier: row.id, walSegmentSize: Number(row.bytes) });
  if (runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', dir]);
  return { url, storage };
}

/** gcwal in this process, as the CLI runs it. */
async function run(argv: string[], env: Record<string, string>) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(argv, env, { stdout, stderr, interactive: false, cwd: work.path, signal: new AbortController().signal });
  return { code, out, err };
}

/** Resolves with `promise`'s value, or with 'still running' after `ms`: a hang fails the test's assertions instead of its timeout. */
function orStillRunning<T>(promise: Promise<T>, ms: number): Promise<T | 'still running'> {
  return Promise.race([promise, sleep(ms, 'still running' as const, { ref: false })]);
}

/** Poll `check` until it holds; throws `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
  }
}

// Serial: the second test reconfigures the first one's cluster (archive_mode needs a restart).
let cluster: Cluster;
test.before(async () => {
  cluster = await startCluster({ walSegSizeMB: 1, settings: { archive_mode: 'off' } });
});
test.after.always(async () => {
  await cluster?.destroy();
});

test.serial('a primary with archive_mode off is refused with exit 14 before the backup starts, and backed up with --no-archive-check', async (t) => {
  const { url, storage } = await repositoryFor(cluster);
  const env = { ...cluster.env, GCWAL_REPO: url };
  const refused = await run(['backup-push', cluster.pgdata], env);
  t.is(refused.code, 14, refused.err);
  t.regex(
    refused.err,
    /^gcwal: error: archive_mode is off on the server at .*: the wal a backup needs would never reach the repository, so it could not be restored \(.*--no-archive-check/m,
  );
  t.notRegex(refused.err, /started/);
  t.deepEqual(await listBackups(storage), []);

  const taken = await run(['backup-push', '--no-archive-check', cluster.pgdata], env);
  t.is(taken.code, 0, taken.err);
  t.regex(taken.err, /^gcwal: warning: archive_mode is off/m);
  t.deepEqual(
    (await listBackups(storage)).map((m) => m.name),
    [taken.out.trim()],
  );
});

test.serial(
  'a backup whose WAL is not being archived fails with exit 14 after GCWAL_ARCHIVE_TIMEOUT, naming the failed WAL, records nothing, and leaves the server out of backup mode',
  async (t) => {
    await cluster.query("ALTER SYSTEM SET archive_mode = 'on'");
    await cluster.query("ALTER SYSTEM SET archive_command = 'false'");
    await cluster.stop();
    await cluster.start();
    // The archiver is stuck on the first segment it fails: that is the failure pg_stat_archiver keeps reporting.
    const stuck = await cluster.switchWal();
    await until('an archiver failure', async () => (await cluster.query<{ n: string }>('SELECT failed_count::text AS n FROM pg_stat_archiver'))[0].n !== '0');
    const { url, storage } = await repositoryFor(cluster);
    const env = { ...cluster.env, GCWAL_REPO: url, GCWAL_ARCHIVE_TIMEOUT: '1' };

    const failed = await orStillRunning(run(['backup-push', cluster.pgdata], env), 90_000);
    if (failed === 'still running') return t.fail('backup-push was still waiting for its WAL after 90 s');
    t.is(failed.code, 14, failed.err);
    t.regex(
      failed.err,
      /^gcwal: error: wal [0-9A-F]{24}( and \d+ later segments?)? that backup base_[0-9A-F]{24} needs is not in the repository: none of it arrived for 1 s; /m,
    );
    t.regex(
      failed.err,
      new RegExp(
        `pg_stat_archiver: last failed ${stuck} at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(\\d+ failures?\\), nothing archived; no backup was recorded \\(check archive_command`,
      ),
    );
    t.deepEqual(await listBackups(storage), []);
    // pg_backup_stop ended the backup before the wait: the server never had to abort it.
    t.notRegex(await cluster.logTail(200), /aborting backup/);
    const again = await run(['backup-push', '--no-archive-check', cluster.pgdata], env);
    t.is(again.code, 0, again.err);
  },
);

test('--pgpassword is refused, without echoing it, and the help lists PGPASSWORD without a flag', async (t) => {
  const refused = await run(['backup-push', '--pgpassword', 'hunter2', '/nonexistent'], { GCWAL_REPO: 'file:///nonexistent' });
  t.is(refused.code, 2);
  t.is(
    refused.err,
    'gcwal: error: --pgpassword is not accepted: a command line is visible to every user of the host (ps) (set PGPASSWORD in the environment or, better, put the password in ~/.pgpass (or the file PGPASSFILE names), as for psql)\n',
  );
  const help = await run(['--help'], {});
  t.regex(help.out, /^ {2}PGPASSWORD {2,}PostgreSQL password/m);
  t.notRegex(help.out, /--pgpassword/);
});

/** Run the installed gcwal as postgres; `waitFor` resolves once its stderr matches. */
function startGcwal(command: string, args: string[], env: Record<string, string>) {
  let stderr = '';
  let stdout = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const child = childEnv(env, true).then((full) => {
    const [file, argv] = asPostgres(command, args);
    return spawn(file, argv, { env: full, cwd: work.path, stdio: ['ignore', 'pipe', 'pipe'] });
  });
  const exited = child.then(
    (c) =>
      new Promise<number>((resolve) => {
        c.stdout!.on('data', (d) => (stdout += d));
        c.stderr!.on('data', (d) => {
          stderr += d;
          for (const w of waiters.filter((w) => w.re.test(stderr))) w.resolve();
        });
        c.on('close', (code) => resolve(code ?? -1));
      }),
  );
  return {
    exited,
    output: () => ({ stdout, stderr }),
    /** resolves true once stderr matches, false if gcwal exits first */
    waitFor: (re: RegExp) =>
      Promise.race([
        new Promise<boolean>((resolve) => (re.test(stderr) ? resolve(true) : waiters.push({ re, resolve: () => resolve(true) }))),
        exited.then(() => re.test(stderr)),
      ]),
  };
}

test('on a standby, backup-push waits until the primary has archived the WAL the backup needs', async (t) => {
  const agent = await installAgent();
  t.teardown(() => agent.cleanup());
  const repoDir = path.join(work.path, 'standby-repo');
  const url = pathToFileURL(repoDir).href;
  // No archive_timeout: the primary switches segments only when told to.
  const primary = await startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: { GCWAL_REPO: url } });
  t.teardown(() => primary.destroy());
  await mkdir(repoDir);
  const storage = new FileStorage(url);
  const [row] = await primary.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  await createRepositoryIdentity(storage, { systemIdentifier: row.id, walSegmentSize: 1024 * 1024 });
  if (runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', repoDir]);

  const standbyDir = path.join(work.path, 'standby');
  // Beside the real pg_ctl: PATH may hold only links to initdb and pg_ctl.
  const pgBasebackup = path.join(path.dirname(realpathSync(pgProgram('pg_ctl'))), 'pg_basebackup');
  const [file, argv] = asPostgres(pgBasebackup, [
    '-D',
    standbyDir,
    '-h',
    primary.host,
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
  ]);
  await execOk(file, argv, { env: await childEnv({}, true), cwd: work.path });
  const standby = await startClusterFromDirectory(standbyDir);
  t.teardown(() => standby.destroy());
  // A checkpoint the standby has replayed: the backup starts there, in the primary's current segment, not archived yet.
  await primary.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS n');
  await primary.query('CHECKPOINT');
  const [{ lsn }] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await until(
    'the standby replaying the checkpoint',
    async () => (await standby.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))[0].ok,
  );
  t.true(await standby.isInRecovery());

  const push = startGcwal(agent.command, ['backup-push', standbyDir], { ...standby.env, GCWAL_REPO: url, GCWAL_ARCHIVE_TIMEOUT: '120' });
  const waited = await push.waitFor(/waiting for .* to reach the repository/);
  t.true(waited, `backup-push did not wait for the WAL: ${push.output().stderr}`);
  await primary.switchWal();
  const code = await orStillRunning(push.exited, 110_000);
  const { stdout, stderr } = push.output();
  t.is(code, 0, stderr);

  const [meta] = await listBackups(storage);
  t.is(meta?.name, stdout.trim());
  t.regex(meta.backupLabel, /^BACKUP FROM: standby$/m);
  const needed = [...segmentRange(meta.timeline, parseLsn(meta.startLsn), parseLsn(meta.stopLsn), meta.walSegmentSize)];
  t.deepEqual(await missingWal(storage, needed), []);
});
