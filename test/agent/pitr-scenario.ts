/**
 * The foundation's end-to-end proof with real PostgreSQL 15, shared by the
 * file:// and gs:// runs: WAL archived by PostgreSQL's own archiver through
 * `gcwal wal-push` under a concurrent write load, a base backup, a
 * point-in-time restore that brings back exactly the rows committed before
 * the target, a promotion that keeps archiving on timeline 2, and a second
 * restore that follows the history file.
 */
import type { ExecutionContext } from 'ava';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../local/testkit/cluster.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import type { InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';

export interface PitrScenario {
  agent: InstalledAgent;
  /** a directory owned by postgres for restored data directories */
  workDir: string;
  /** what gcwal needs, in archive_command, restore_command and by hand: GCWAL_REPO and friends */
  env: Record<string, string>;
  /** registers a cleanup run after the test */
  cleanup: (fn: () => Promise<unknown>) => void;
}

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function insertBatch(cluster: Cluster, batch: string, rows: number, payload = 200): Promise<void> {
  await cluster.query(`INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), ${Math.ceil(payload / 32)}) FROM generate_series(1, $2) g`, [
    batch,
    rows,
  ]);
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
    if (row.state === 'paused') return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

/** Run the whole scenario; assertions go to `t`. */
export async function runPitrScenario(t: ExecutionContext, { agent, workDir, env, cleanup }: PitrScenario): Promise<void> {
  const serverEnv = env;
  const cleanups = { push: cleanup };

  const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv });
  cleanups.push(() => source.destroy());
  // Before the first segment is ready: no push creates the repository.
  await runRepoCreate(agent.command, source, env);
  await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');

  // Batch A under load: four writers and WAL switches at the same time.
  let writing = true;
  const writers = Array.from({ length: 4 }, async () => {
    for (let i = 0; i < 5; i++) {
      await insertBatch(source, 'A', 4000);
      if (i % 2 === 1) await source.switchWal();
    }
  });
  const switcher = (async () => {
    while (writing) {
      await sleep(100);
      await source.switchWal();
    }
  })();
  await Promise.all(writers);
  writing = false;
  await switcher;
  await source.waitForArchived(await source.switchWal(), 60_000);
  const [{ archived }] = await source.query<{ archived: string }>('SELECT archived_count AS archived FROM pg_stat_archiver');
  t.true(Number(archived) >= 6, `only ${archived} segments archived`);
  const [{ failed }] = await source.query<{ failed: string }>('SELECT failed_count AS failed FROM pg_stat_archiver');
  t.is(Number(failed), 0, 'archive_command failed at least once');

  // Base backup, taken by gcwal as the postgres user over the socket.
  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
  t.is(pushed.code, 0, pushed.stderr);
  const backupName = pushed.stdout.trim().split('\n').pop()!;
  t.regex(backupName, /^base_00000001[0-9A-F]{16}$/);

  const listed = await runGcwal(agent.command, ['backup-list', '--json'], { env });
  t.is(listed.code, 0, listed.stderr);
  const backups = JSON.parse(listed.stdout) as { name: string; timeline: number }[];
  t.deepEqual(
    backups.map((b) => b.name),
    [backupName],
  );

  // B is committed before the target time, C after it.
  await insertBatch(source, 'B', 1500);
  const [{ target }] = await source.query<{ target: string }>(
    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target",
  );
  await sleep(1200);
  await insertBatch(source, 'C', 700);
  await source.waitForArchived(await source.switchWal(), 60_000);
  t.deepEqual(await counts(source), { A: 80000, B: 1500, C: 700 });

  // Restore to the target time into a new directory and start it.
  const dest1 = path.join(workDir, 'restore1');
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest1, 'LATEST', '--target-time', target, '--gcwal-command', agent.command], {
    asUser: 'postgres',
    env,
  });
  t.is(fetched.code, 0, fetched.stderr);
  const restored = await startClusterFromDirectory(dest1, { serverEnv });
  cleanups.push(() => restored.destroy());
  await waitForPausedAtTarget(restored);
  t.deepEqual(await counts(restored), { A: 80000, B: 1500 }, 'the restore holds exactly the rows committed before the target');

  // Promote: timeline 2, archiving into the same repository.
  await restored.promote();
  await restored.waitForRecoveryEnd();
  const [{ tli }] = await restored.query<{ tli: string }>('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli');
  t.is(tli, '00000002');
  await insertBatch(restored, 'D', 900);
  await restored.waitForArchived('00000002.history', 60_000);
  const lastOnTwo = await restored.switchWal();
  t.regex(lastOnTwo, /^00000002/);
  await restored.waitForArchived(lastOnTwo, 60_000);
  await restored.stop();

  // A second restore of the same backup follows the history file to timeline 2.
  const dest2 = path.join(workDir, 'restore2');
  const fetched2 = await runGcwal(
    agent.command,
    ['backup-fetch', dest2, backupName, '--recovery', '--target-timeline', 'latest', '--gcwal-command', agent.command],
    { asUser: 'postgres', env },
  );
  t.is(fetched2.code, 0, fetched2.stderr);
  const second = await startClusterFromDirectory(dest2, { serverEnv });
  cleanups.push(() => second.destroy());
  await second.waitForRecoveryEnd(120_000);
  t.deepEqual(await counts(second), { A: 80000, B: 1500, D: 900 }, 'timeline 2 replayed, timeline 1 after the fork ignored');
  const [{ tli: tli2 }] = await second.query<{ tli: string }>('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli');
  t.is(tli2, '00000003', 'recovery ended on a new timeline after 2');
}
