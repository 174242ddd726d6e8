/**
 * Backups from a hot standby through the installed CLI (issue 12): a
 * primary archiving with `gcwal wal-push`, a streaming standby made from a
 * gcwal backup (backup-fetch, then standby.signal and primary_conninfo; no
 * pg_basebackup), `backup-push` run on the standby, which reaches the primary
 * through GCWAL_PRIMARY_CONNINFO to switch its WAL segment, and a
 * point-in-time restore from the standby's backup. Serial: the tests share
 * one primary and one standby, and each leaves the primary as the next needs.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listBackups } from '../../core/backup/list.ts';
import { openStorage } from '../../core/storage/open.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../helpers/cluster.ts';
import { installAgent, type InstalledAgent } from '../helpers/install.ts';
import { runRepoCreate } from '../helpers/repo.ts';
import { runGcwal } from '../helpers/run.ts';
import { makeTempDir, type TempDir } from '../helpers/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;
let primary: Cluster;
let standby: Cluster;
let env: { GCWAL_REPO: string };
const cleanups: (() => Promise<unknown>)[] = [];

/** GCWAL_PRIMARY_CONNINFO for `cluster`, as an operator would write it (TCP, the password would be in ~/.pgpass). */
const conninfoOf = (cluster: Cluster) => `host=127.0.0.1 port=${cluster.port} user=postgres dbname=postgres`;

async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query('INSERT INTO items (batch, payload) SELECT $1, md5(g::text) FROM generate_series(1, $2) g', [batch, rows]);
}

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
  }
}

/** A checkpoint on the primary that the standby has replayed: a standby's backup starts at its latest restartpoint. */
async function checkpointReplayed(): Promise<void> {
  await primary.query('CHECKPOINT');
  const [{ lsn }] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await until('the standby replaying the checkpoint', async () => (await standby.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))[0].ok);
}

function backupPushOnStandby(extra: Record<string, string>) {
  return runGcwal(agent.command, ['backup-push', standby.pgdata], { asUser: 'postgres', env: { ...standby.env, ...env, ...extra } });
}

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('pitr-standby', { owner: 'postgres' });
  env = { GCWAL_REPO: `file://${path.join(work.path, 'repo')}` };
  // No archive_timeout: the primary leaves a segment only when it fills or is told to.
  primary = await startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  cleanups.push(() => primary.destroy());
  await runRepoCreate(agent.command, primary, env);
  await primary.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
  await insertBatch(primary, 'A', 2000);

  // The standby, from a gcwal backup of the primary: WAL from the repository, then streaming.
  const pushed = await runGcwal(agent.command, ['backup-push', primary.pgdata], { asUser: 'postgres', env: { ...primary.env, ...env } });
  if (pushed.code !== 0) throw new Error(`backup-push on the primary exited ${pushed.code}: ${pushed.stderr}`);
  const standbyDir = path.join(work.path, 'standby');
  const fetched = await runGcwal(agent.command, ['backup-fetch', standbyDir, 'LATEST', '--recovery', '--gcwal-command', agent.command], { asUser: 'postgres', env });
  if (fetched.code !== 0) throw new Error(`backup-fetch exited ${fetched.code}: ${fetched.stderr}`);
  await rm(path.join(standbyDir, 'recovery.signal'));
  await writeFile(path.join(standbyDir, 'standby.signal'), '');
  standby = await startClusterFromDirectory(standbyDir, { serverEnv: env, settings: { primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres application_name=standby` } });
  cleanups.push(() => standby.destroy());
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

test.serial('a standby made from a gcwal backup streams from its primary', async (t) => {
  t.true(await standby.isInRecovery());
  await until('the standby streaming', async () => (await primary.query("SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'")).length === 1);
  await checkpointReplayed();
  t.deepEqual(await counts(standby), { A: 2000 });
});

test.serial('without GCWAL_PRIMARY_CONNINFO, on an idle primary, backup-push on the standby says while it waits and when it gives up that the primary must switch segments', async (t) => {
  await checkpointReplayed();
  const r = await backupPushOnStandby({ GCWAL_ARCHIVE_TIMEOUT: '2' });
  t.is(r.code, 14, r.stderr);
  t.regex(r.stderr, /waiting for wal [0-9A-F]{24} to reach the repository; on a standby the last segment is archived only once the primary switches wal segments \(archive_timeout there\), or set GCWAL_PRIMARY_CONNINFO so that backup-push switches it/);
  t.regex(r.stderr, /^gcwal: error: wal [0-9A-F]{24} that backup base_[0-9A-F]{24} needs is not in the repository: none of it arrived for 2 s; .*\(on a standby .* set GCWAL_PRIMARY_CONNINFO so that backup-push switches it/m);
});

test.serial('on an idle primary, backup-push on the standby switches the primary\'s wal through GCWAL_PRIMARY_CONNINFO and records the backup at once', async (t) => {
  await checkpointReplayed();
  // Without the switch the last segment never comes: this timeout would end the run with exit 14.
  const r = await backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(primary), GCWAL_ARCHIVE_TIMEOUT: '20' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /switched wal on the primary at 127\.0\.0\.1:\d+ so that the last segment the backup needs is archived/);
  const meta = (await listBackups(await openStorage(env.GCWAL_REPO))).find((m) => m.name === r.stdout.trim());
  t.regex(meta?.backupLabel ?? '', /^BACKUP FROM: standby$/m);
});

test.serial('GCWAL_PRIMARY_CONNINFO that reaches a standby is refused before the backup starts', async (t) => {
  const before = (await listBackups(await openStorage(env.GCWAL_REPO))).length;
  const r = await backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(standby) });
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /^gcwal: error: GCWAL_PRIMARY_CONNINFO reaches 127\.0\.0\.1:\d+, which is in recovery too: only the primary can switch wal segments \(point GCWAL_PRIMARY_CONNINFO at the primary\)$/m);
  t.notRegex(r.stderr, /started/);
  t.is((await listBackups(await openStorage(env.GCWAL_REPO))).length, before);
});

test.serial('a backup taken on the standby while the primary is under load restores to a point in time with exactly the rows committed before it', async (t) => {
  await checkpointReplayed();
  let writing = true;
  const writer = (async () => {
    // Light: each segment the load fills is one more wal-push before the backup is recorded.
    while (writing) {
      await insertBatch(primary, 'L', 100);
      await sleep(20);
    }
  })();
  const pushed = await backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(primary) }).finally(() => (writing = false));
  await writer;
  t.is(pushed.code, 0, pushed.stderr);
  const name = pushed.stdout.trim();
  const loaded = (await counts(primary)).L;
  t.true(loaded > 0);

  // B is committed before the target time, C after it.
  await insertBatch(primary, 'B', 500);
  const [{ target }] = await primary.query<{ target: string }>("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target");
  await sleep(1100);
  await insertBatch(primary, 'C', 300);
  await primary.waitForArchived(await primary.switchWal(), 60_000);

  const dest = path.join(work.path, 'restore');
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest, name, '--target-time', target, '--gcwal-command', agent.command], { asUser: 'postgres', env });
  t.is(fetched.code, 0, fetched.stderr);
  // The standby's signal file stays behind: the restore recovers to its target instead of streaming from the primary.
  t.false(existsSync(path.join(dest, 'standby.signal')));
  const restored = await startClusterFromDirectory(dest, { serverEnv: env });
  cleanups.push(() => restored.destroy());
  await until('recovery pausing at its target', async () => (await restored.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused'))[0].paused);
  t.deepEqual(await counts(restored), { A: 2000, L: loaded, B: 500 }, 'the restore holds exactly the rows committed before the target');
  t.deepEqual(await restored.query('SELECT 1 FROM pg_stat_wal_receiver'), [], 'the restore does not stream from the primary');
});
