/**
 * A primary archiving with the installed `gcwal wal-push` and a streaming
 * standby made from a gcwal backup of it (backup-fetch --recovery, then
 * standby.signal and primary_conninfo instead of recovery.signal; no
 * pg_basebackup), and the backup-from-the-standby round trip: a backup-push
 * on the standby while the primary is under load, then a point-in-time
 * restore from that backup with exactly the rows committed before the
 * target. Shared by the standby tests of each PostgreSQL version.
 */
import type { ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../local/testkit/cluster.ts';
import type { InstalledAgent } from '../../local/testkit/install.ts';
import type { PgMajor } from '../../local/testkit/pgbin.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import { runGcwal, type GcwalResult } from '../../local/testkit/run.ts';

export interface StandbyPair {
  primary: Cluster;
  standby: Cluster;
  /** GCWAL_REPO, for gcwal and the servers alike */
  env: { GCWAL_REPO: string };
  /** rows of batch A, committed before the standby was made */
  initialRows: number;
  /** backup-push on the standby, as postgres, with `extra` variables */
  backupPushOnStandby(extra: Record<string, string>): Promise<GcwalResult>;
  /** a CHECKPOINT on the primary that the standby has replayed: a standby's backup starts at its latest restartpoint */
  checkpointReplayed(): Promise<void>;
  /** stop and remove both servers */
  destroy(): Promise<void>;
}

/** GCWAL_PRIMARY_CONNINFO for `cluster`, as an operator writes it (TCP; a password would be in ~/.pgpass). */
export const conninfoOf = (cluster: Cluster) => `host=127.0.0.1 port=${cluster.port} user=postgres dbname=postgres`;

export async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query('INSERT INTO items (batch, payload) SELECT $1, md5(g::text) FROM generate_series(1, $2) g', [batch, rows]);
}

export async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

/** Poll `check` until it holds; throws `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
  }
}

/**
 * Start the primary (1 MiB segments, no archive_timeout: it leaves a segment
 * only when it fills or is told to), create its repository under `workDir`,
 * back it up with gcwal and make the standby from that backup, streaming.
 * Rejects with gcwal's output when a step fails; cleans up what it started.
 */
export async function makeStandbyPair(agent: InstalledAgent, workDir: string, pgMajor?: PgMajor): Promise<StandbyPair> {
  const env = { GCWAL_REPO: `file://${path.join(workDir, 'repo')}` };
  const primary = await startCluster({ pgMajor, walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  let standby: Cluster | undefined;
  const destroy = async () => {
    await standby?.destroy();
    await primary.destroy();
  };
  try {
    await runRepoCreate(agent.command, primary, env);
    await primary.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
    const initialRows = 2000;
    await insertBatch(primary, 'A', initialRows);
    const ok = (what: string, r: GcwalResult) => {
      if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}`);
    };
    ok('backup-push on the primary', await runGcwal(agent.command, ['backup-push', primary.pgdata], { asUser: 'postgres', env: { ...primary.env, ...env } }));
    const standbyDir = path.join(workDir, 'standby');
    ok(
      'backup-fetch',
      await runGcwal(agent.command, ['backup-fetch', standbyDir, 'LATEST', '--recovery', '--gcwal-command', agent.command], { asUser: 'postgres', env }),
    );
    // restore_command stays: the standby fetches the WAL since the backup from the repository, then streams.
    await rm(path.join(standbyDir, 'recovery.signal'));
    await writeFile(path.join(standbyDir, 'standby.signal'), '');
    standby = await startClusterFromDirectory(standbyDir, {
      pgMajor,
      serverEnv: env,
      settings: { primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres application_name=standby` },
    });
    const s = standby;
    await until(
      'the standby streaming',
      async () => (await primary.query("SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'")).length === 1,
    );
    return {
      primary,
      standby: s,
      env,
      initialRows,
      destroy,
      backupPushOnStandby: (extra) => runGcwal(agent.command, ['backup-push', s.pgdata], { asUser: 'postgres', env: { ...s.env, ...env, ...extra } }),
      async checkpointReplayed() {
        await primary.query('CHECKPOINT');
        const [{ lsn }] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        await until(
          'the standby replaying the checkpoint',
          async () => (await s.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))[0].ok,
        );
      },
    };
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }
}

/**
 * backup-push on the standby (reaching the primary with
 * GCWAL_PRIMARY_CONNINFO) while a writer inserts on the primary; then rows B
 * before a target time and C after it; backup-fetch --target-time from the
 * standby's backup into `<workDir>/<restoreName>`, started on the same
 * version: exactly A, the load's rows and B, recovery paused at the target,
 * not streaming from the primary.
 */
export async function pitrFromStandbyUnderLoad(
  t: ExecutionContext,
  pair: StandbyPair,
  o: { agent: InstalledAgent; workDir: string; pgMajor?: PgMajor; cleanup: (fn: () => Promise<unknown>) => void },
): Promise<void> {
  const { primary, env } = pair;
  await pair.checkpointReplayed();
  let writing = true;
  const writer = (async () => {
    // Light: each segment the load fills is one more wal-push before the backup is recorded.
    while (writing) {
      await insertBatch(primary, 'L', 100);
      await sleep(20);
    }
  })();
  const pushed = await pair.backupPushOnStandby({ GCWAL_PRIMARY_CONNINFO: conninfoOf(primary) }).finally(() => (writing = false));
  await writer;
  t.is(pushed.code, 0, pushed.stderr);
  const name = pushed.stdout.trim();
  const loaded = (await counts(primary)).L;
  t.true(loaded > 0);

  // B is committed before the target time, C after it.
  await insertBatch(primary, 'B', 500);
  const [{ target }] = await primary.query<{ target: string }>(
    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target",
  );
  await sleep(1100);
  await insertBatch(primary, 'C', 300);
  await primary.waitForArchived(await primary.switchWal(), 60_000);

  const dest = path.join(o.workDir, 'restore');
  const fetched = await runGcwal(o.agent.command, ['backup-fetch', dest, name, '--target-time', target, '--gcwal-command', o.agent.command], {
    asUser: 'postgres',
    env,
  });
  t.is(fetched.code, 0, fetched.stderr);
  // The standby's signal file stays behind: the restore recovers to its target instead of streaming from the primary.
  t.false(existsSync(path.join(dest, 'standby.signal')));
  const restored = await startClusterFromDirectory(dest, { pgMajor: o.pgMajor, serverEnv: env });
  o.cleanup(() => restored.destroy());
  await until(
    'recovery pausing at its target',
    async () => (await restored.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused'))[0].paused,
  );
  t.deepEqual(await counts(restored), { A: pair.initialRows, L: loaded, B: 500 }, 'the restore holds exactly the rows committed before the target');
  t.deepEqual(await restored.query('SELECT 1 FROM pg_stat_wal_receiver'), [], 'the restore does not stream from the primary');
}
