/**
 * Backups from a hot standby through the installed CLI on the suite's
 * PostgreSQL (issue 12; the scenario is test/agent/standby-scenario.ts):
 * backup-push on a standby made from a gcwal backup reaches the primary
 * through GCWAL_PRIMARY_CONNINFO to switch its WAL segment, says what is
 * missing without it, refuses a connection string that does not lead to the
 * primary, and its backup taken under load restores to a point in time.
 * Serial: the tests share one primary and one standby.
 */
import test from 'ava';
import { listBackups } from '../../core/backup/list.ts';
import { openStorage } from '../../core/storage/open.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { conninfoOf, counts, makeStandbyPair, pitrFromStandbyUnderLoad, type StandbyPair } from './standby-scenario.ts';

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
