/**
 * The standby round trip of test/agent/pitr-standby.test.ts on PostgreSQL 18
 * (pg_backup_start/pg_backup_stop on a standby of the newest major version):
 * a standby made from a gcwal backup, a backup-push on it under load that
 * switches the primary's WAL, a point-in-time restore from that backup.
 */
import test from 'ava';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { makeStandbyPair, pitrFromStandbyUnderLoad } from './standby-scenario.ts';

let agent: InstalledAgent;
let work: TempDir;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('pitr-standby-18', { owner: 'postgres' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

test('on PostgreSQL 18, a backup taken on a standby made from a gcwal backup, under load, restores to a point in time with exactly the rows committed before it', async (t) => {
  const pair = await makeStandbyPair(agent, work.path, 18);
  cleanups.push(() => pair.destroy());
  const [{ version }] = await pair.standby.query<{ version: string }>("SELECT current_setting('server_version_num') AS version");
  t.is(Math.floor(Number(version) / 10000), 18);
  await pitrFromStandbyUnderLoad(t, pair, { agent, workDir: work.path, pgMajor: 18, cleanup: (fn) => cleanups.push(fn) });
});
