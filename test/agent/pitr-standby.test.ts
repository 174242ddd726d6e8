/**
 * Backups from a hot standby through the installed CLI on the suite's
 * PostgreSQL (issue 12; the scenario is test/agent/standby-scenario.ts):
 * backup-push on a standby made from a gcwal backup reaches the primary
 * through GCWAL_PRIMARY_CONNINFO to switch its WAL segment, says what is
 * missing without it, refuses a connection string that does not lead to the
 * primary, and its backup taken under load restores to a point in time.
 * Retention treats the standby's backup like any other (backup-list,
 * delete's plan), and the standby archives WAL itself with archive_mode =
 * always and the plain, synchronous wal-push: its backup then needs nothing
 * archived by the primary, and the primary's later pushes of the same
 * segments find them already there. Serial: the tests share one primary and
 * one standby; the archive_mode = always test comes last, as it stops the
 * primary's archiving for a while.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DeleteReport } from '../../agent/retention/report.ts';
import { listBackups } from '../../core/backup/list.ts';
import { walFileNameFromKey, walObjectKey } from '../../core/layout.ts';
import { startClusterFromDirectory } from '../../local/testkit/cluster.ts';
import { openStorage } from '../../core/storage/open.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { conninfoOf, counts, insertBatch, makeStandbyPair, pitrFromStandbyUnderLoad, type StandbyPair, until } from './standby-scenario.ts';

let agent: InstalledAgent;
let work: TempDir;
let pair: StandbyPair;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('pitr-standby', { owner: 'postgres' });
  pair = await makeStandbyPair(agent, work.path);
  cleanups.push(() => pair.destroy());
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

const backups = async () => listBackups(await openStorage(pair.env.GCWAL_REPO));
/** The installed gcwal on the repository, as postgres. */
const gcwal = (args: string[]) => runGcwal(agent.command, args, { asUser: 'postgres', env: pair.env });
/** The names of the WAL files in the repository, one per object. */
const archivedWal = async () => {
  const names: string[] = [];
  for await (const info of (await openStorage(pair.env.GCWAL_REPO)).list('wal/')) names.push(walFileNameFromKey(info.key) ?? info.key);
  return names;
};

test.serial('a standby made from a gcwal backup streams from its primary', async (t) => {
  t.true(await pair.standby.isInRecovery());
  await pair.checkpointReplayed();
  t.deepEqual(await counts(pair.standby), { A: pair.initialRows });
});

test.serial(
  'without GCWAL_PRIMARY_CONNINFO, on an idle primary, backup-push on the standby says while it waits and when it gives up that the primary must switch segments',
  async (t) => {
    await pair.checkpointReplayed();
    const r = await pair.backupPushOnStandby({ GCWAL_ARCHIVE_TIMEOUT: '2' });
    t.is(r.code, 14, r.stderr);
    t.regex(
      r.stderr,
      /waiting for wal [0-9A-F]{24} to reach the repository; on a standby the last segment is archived only once the primary switches wal segments \(archive_timeout there\), or set GCWAL_PRIMARY_CONNINFO so that backup-push switches it/,
    );
    t.regex(
      r.stderr,
      /^gcwal: error: wal [0-9A-F]{24} that backup base_[0-9A-F]{24} needs is not in the repository: none of it arrived for 2 s; .*\(on a standby .* set GCWAL_PRIMARY_CONNINFO so that backup-push switches it/m,
    );
  },
);

test.serial(
  "on an idle primary, backup-push on the standby switches the primary's wal through GCWAL_PRIMARY_CONNINFO and records the backup at once",
  async (t) => {
    await pair.checkpointReplayed();
    // The test before shows that without the switch the last segment does not come: this timeout would end the run with exit 14.
    const r = await pair.backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(pair.primary), GCWAL_ARCHIVE_TIMEOUT: '20' });
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /switched wal on the primary at 127\.0\.0\.1:\d+ so that the last segment the backup needs is archived/);
    const meta = (await backups()).find((m) => m.name === r.stdout.trim());
    t.regex(meta?.backupLabel ?? '', /^BACKUP FROM: standby$/m);
  },
);

test.serial(
  "backup-list shows the standby's backup, and delete --retain-full 1 plans to keep it with its WAL and delete the primary's older backup",
  async (t) => {
    // The repository holds the primary's backup the standby was made from and the standby's backup of the test before.
    const all = await backups();
    const fromStandby = all.filter((m) => /^BACKUP FROM: standby$/m.test(m.backupLabel ?? ''));
    t.is(fromStandby.length, 1, all.map((m) => m.name).join(' '));
    const [primaryBackup, standbyBackup] = [all.find((m) => !fromStandby.includes(m))!, fromStandby[0]!];

    const listed = await gcwal(['backup-list', '--json']);
    t.is(listed.code, 0, listed.stderr);
    t.deepEqual(
      (JSON.parse(listed.stdout) as { name: string; startWalSegment: string }[]).map((b) => [b.name, b.startWalSegment]),
      [
        [primaryBackup.name, primaryBackup.startWalSegment],
        [standbyBackup.name, standbyBackup.startWalSegment],
      ],
      "oldest first, the standby's the newest",
    );

    const dry = await gcwal(['delete', '--retain-full', '1', '--json']);
    t.is(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout) as DeleteReport;
    t.true(report.dryRun);
    t.deepEqual(report.agentValidation?.backups, [{ name: standbyBackup.name, ok: true }], 'the kept backup is read and found valid');
    t.deepEqual(report.plan.keptBackups, [standbyBackup.name]);
    t.deepEqual(report.plan.deletedBackups, [primaryBackup.name]);
    const doomedWal = report.plan.delete.map((o) => o.key).filter((k) => k.startsWith('wal/'));
    t.true(doomedWal.length > 0);
    for (const key of doomedWal) t.true(key.slice(4, 28) < standbyBackup.startWalSegment, `${key} is WAL the standby's backup needs`);
    t.true(report.plan.delete.every((o) => !o.key.startsWith(`backups/${standbyBackup.name}/`)));
    t.deepEqual(
      (await backups()).map((m) => m.name),
      all.map((m) => m.name),
      'a dry run deletes nothing',
    );
  },
);

test.serial('GCWAL_PRIMARY_CONNINFO that reaches a standby is refused before the backup starts', async (t) => {
  const before = (await backups()).length;
  const r = await pair.backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(pair.standby) });
  t.is(r.code, 2, r.stderr);
  t.regex(
    r.stderr,
    /^gcwal: error: GCWAL_PRIMARY_CONNINFO reaches 127\.0\.0\.1:\d+, which is in recovery too: only the primary can switch wal segments \(point GCWAL_PRIMARY_CONNINFO at the primary\)$/m,
  );
  t.notRegex(r.stderr, /started/);
  t.is((await backups()).length, before);
});

test.serial(
  'a backup taken on the standby while the primary is under load restores to a point in time with exactly the rows committed before it',
  async (t) => {
    await pitrFromStandbyUnderLoad(t, pair, { agent, workDir: work.path, cleanup: (fn) => cleanups.push(fn) });
  },
);

test.serial(
  'a standby archiving itself with archive_mode = always and wal-push archives each segment once, and its backup restores with WAL the primary never archived',
  async (t) => {
    const { primary, standby } = pair;
    const setting = async (name: string) => (await primary.query<{ v: string }>('SELECT current_setting($1) AS v', [name]))[0]!.v;
    // The primary stops archiving (an empty archive_command keeps its WAL until there is one again): what reaches the repository now comes from the standby.
    await primary.query("ALTER SYSTEM SET archive_command = ''");
    await primary.query('SELECT pg_reload_conf()');
    await until('the primary pausing its archiving', async () => (await setting('archive_command')) === '');
    const [before] = await primary.query<{ last: string | null; failed: number }>(
      'SELECT last_archived_wal AS last, failed_count::int AS failed FROM pg_stat_archiver',
    );
    await standby.query("ALTER SYSTEM SET archive_mode = 'always'");
    await standby.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
    await standby.stop();
    await standby.start();
    await until(
      'the standby streaming again',
      async () => (await primary.query("SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'")).length === 1,
    );
    const standbyArchived = (name: string) => async () =>
      (await standby.query<{ ok: boolean }>('SELECT coalesce(last_archived_wal >= $1, false) AS ok FROM pg_stat_archiver', [name]))[0]!.ok;

    await insertBatch(primary, 'S', 300);
    const first = await primary.switchWal();
    await until(`the standby archiving ${first}`, standbyArchived(first), 120_000);
    // The switch through GCWAL_PRIMARY_CONNINFO reaches the repository only through the standby's archiver.
    const pushed = await pair.backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(primary), GCWAL_ARCHIVE_TIMEOUT: '120' });
    t.is(pushed.code, 0, pushed.stderr);
    const name = pushed.stdout.trim();
    await insertBatch(primary, 'T', 200);
    await primary.query("SELECT pg_create_restore_point('after-t')");
    const expected = await counts(primary);
    const last = await primary.switchWal();
    await until(`the standby archiving ${last}`, standbyArchived(last), 120_000);
    const [standbyStats] = await standby.query<{ archived: number; failed: number }>(
      'SELECT archived_count::int AS archived, failed_count::int AS failed FROM pg_stat_archiver',
    );
    t.true(standbyStats!.archived >= 3, JSON.stringify(standbyStats));
    t.is(standbyStats!.failed, 0);
    const [paused] = await primary.query<{ last: string | null }>('SELECT last_archived_wal AS last FROM pg_stat_archiver');
    t.is(paused!.last, before!.last, 'the primary archived nothing meanwhile');
    t.true((await archivedWal()).includes(last));

    // Restored before the primary archives again: every segment it replays came from the standby.
    const dest = path.join(work.path, 'restore-always');
    const fetched = await gcwal(['backup-fetch', dest, name, '--target-name', 'after-t', '--gcwal-command', agent.command]);
    t.is(fetched.code, 0, fetched.stderr);
    t.false(existsSync(path.join(dest, 'standby.signal')));
    // archive_mode = always came with the standby's settings: the restore is no archiver.
    const restored = await startClusterFromDirectory(dest, { serverEnv: pair.env, settings: { archive_mode: 'on', archive_command: '' } });
    cleanups.push(() => restored.destroy());
    await until(
      'recovery pausing at its target',
      async () => (await restored.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused'))[0]!.paused,
    );
    t.deepEqual(await counts(restored), expected, 'the restore holds exactly the rows up to the restore point');
    await restored.destroy();

    // The primary archives again: the same segments, pushed a second time, are found identical (no failure) and stay one object each.
    await primary.query('ALTER SYSTEM RESET archive_command');
    await primary.query('SELECT pg_reload_conf()');
    await primary.waitForArchived(last, 120_000);
    const [after] = await primary.query<{ failed: number }>('SELECT failed_count::int AS failed FROM pg_stat_archiver');
    t.is(after!.failed, before!.failed, 'the primary met no conflict');
    const wal = await archivedWal();
    t.is(new Set(wal).size, wal.length, wal.join(' '));
    t.truthy(wal.includes(first) && (await (await openStorage(pair.env.GCWAL_REPO)).stat(walObjectKey(first))));
  },
);
