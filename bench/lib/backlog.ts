/**
 * A WAL backlog for the archiver-driven benchmark: a stopped data directory
 * whose pg_wal holds exactly N real, naturally completed 16 MiB segments
 * marked `.ready`, copied once per measured tool; and the timing of
 * PostgreSQL's own archiver draining such a copy.
 */
import { readdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { execOk } from '../../local/testkit/exec.ts';
import type { Cleanups } from './cleanup.ts';
import { pgTool } from './pgtool.ts';
import { postgresEnv, runOk } from './proc.ts';

const SEGMENT = /^[0-9A-F]{24}$/;

/** The stopped source of every run's backlog. */
export interface Backlog {
  /** the stopped data directory: copy it, never start it */
  pgdata: string;
  /** the `.ready` segments in archiving order, `count` of them */
  segments: string[];
  /** a copy of a complete segment of the same cluster from before the backlog, for warming up a repository */
  warmup: string;
  /** what produced the backlog, for the report */
  description: string;
}

export interface BacklogOptions {
  /** segments in the backlog */
  count: number;
  /** pgbench scale of the database the load runs on */
  scale: number;
  /** a directory the postgres user can write, for the warm-up copy */
  dir: string;
  log: (line: string) => void;
}

/**
 * Build the backlog: a cluster (fsync off, checkpoint_timeout 30 s so
 * full-page images keep coming, wal_recycle off so pg_wal holds no recycled
 * files to copy) gets a pgbench database with `cp` archiving, one segment
 * is kept for warm-ups, and archiving is then left unconfigured
 * (`archive_command = ''`: PostgreSQL 15 marks segments `.ready` and skips
 * them without counting a failure or sleeping between retries, unlike a
 * failing command). pgbench TPC-B runs in 2-second rounds until `count`
 * segments are ready; then a CHECKPOINT and a fast shutdown, which with
 * archiving on also closes the current, partly filled segment. Every ready
 * segment but the newest `count` full ones (the extra oldest, and the one the
 * shutdown closed) is marked `.done`, what the archiver itself does after
 * archiving, so every copy holds exactly `count`. The cluster is registered
 * with `cleanups`, which removes its directory.
 */
export async function makeBacklog(options: BacklogOptions, cleanups: Cleanups): Promise<Backlog> {
  const cluster = await startCluster({
    archiveCommand: `cp %p ${options.dir}/%f`,
    settings: { checkpoint_timeout: '30s', max_wal_size: '1GB', wal_recycle: false },
  });
  cleanups.add('the backlog source cluster', () => cluster.destroy());
  const env = await postgresEnv(cluster.env);
  const pgbench = pgTool('pgbench');
  options.log(`backlog: pgbench -i -s ${options.scale}`);
  await runOk(pgbench, ['-i', '-q', '-s', String(options.scale)], { env });
  const warmup = await cluster.switchWal();
  await cluster.waitForArchived(warmup, 120_000);
  await cluster.query("ALTER SYSTEM SET archive_command = ''");
  await cluster.query('SELECT pg_reload_conf()');
  await sleep(500);

  const started = performance.now();
  let transactions = 0;
  let ready: string[] = [];
  for (let round = 0; ready.length < options.count; round++) {
    if (round >= 600) throw new Error(`only ${ready.length} ready segments after ${round} rounds of pgbench`);
    const run = await runOk(pgbench, ['-n', '-c', '4', '-j', '2', '-T', '2'], { env });
    transactions += Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1] ?? 0);
    ready = await readySegments(cluster.pgdata);
    if (round % 5 === 4 || ready.length >= options.count)
      options.log(`backlog: ${ready.length}/${options.count} ready segments after ${Math.round((performance.now() - started) / 1000)} s of pgbench`);
  }
  const seconds = (performance.now() - started) / 1000;
  await cluster.query('CHECKPOINT');
  // With archiving on, the shutdown also switches WAL: the partly filled segment it closes is no part of the backlog.
  await cluster.stop('fast');
  const keep = new Set(ready.slice(-options.count));
  const status = path.join(cluster.pgdata, 'pg_wal', 'archive_status');
  for (const name of await readySegments(cluster.pgdata)) {
    if (!keep.has(name)) await rename(path.join(status, `${name}.ready`), path.join(status, `${name}.done`));
  }
  const segments = await readySegments(cluster.pgdata);
  if (segments.join() !== [...keep].join())
    throw new Error(`the backlog holds ${segments.length} ready segments after shutdown, not the ${options.count} full ones`);
  return {
    pgdata: cluster.pgdata,
    segments,
    warmup: path.join(options.dir, warmup),
    description: `pgbench -s ${options.scale} TPC-B (-c 4 -j 2, fsync off, checkpoint_timeout 30s) with archiving unconfigured: ${transactions} transactions in ${seconds.toFixed(0)} s left ${ready.length} segments ready, the newest ${options.count} (${segments[0]}…${segments.at(-1)}) make the backlog`,
  };
}

/** Names of the segments in `pgdata`'s pg_wal marked `.ready`, in WAL order. */
export async function readySegments(pgdata: string): Promise<string[]> {
  const entries = await readdir(path.join(pgdata, 'pg_wal', 'archive_status'));
  return entries
    .filter((e) => e.endsWith('.ready'))
    .map((e) => e.slice(0, -'.ready'.length))
    .filter((n) => SEGMENT.test(n))
    .sort();
}

/**
 * Copy the backlog's data directory to `dest` (which must not exist) with
 * owner, modes and times, then flush the page cache's dirty pages to disk,
 * so the copy's write-back does not compete with the fsyncs being timed.
 */
export async function copyBacklog(backlog: Backlog, dest: string): Promise<void> {
  await execOk('cp', ['-a', backlog.pgdata, dest]);
  await execOk('sync', []);
}

/** How one drain went. */
export interface Drain {
  /** from pg_reload_conf() until the last poll that found the backlog archived */
  ms: number;
  archived: number;
  failed: number;
}

interface ArchiverRow {
  archived_count: number;
  failed_count: number;
}

/** Polling interval while the archiver drains. */
const POLL_MS = 20;

/**
 * Set `archiveCommand` with ALTER SYSTEM, start the clock, pg_reload_conf(),
 * and poll every 20 ms (pg_stat_archiver on one open connection, and the
 * archive_status directory) until archived_count has grown by `count` and no
 * `.ready` file is left. Resolves with the elapsed time and the counters'
 * growth; rejects after `timeoutMs` with the server log tail.
 */
export async function timeDrain(cluster: Cluster, archiveCommand: string, count: number, timeoutMs: number): Promise<Drain> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    const stats = async () => (await client.query<ArchiverRow>('SELECT archived_count::int, failed_count::int FROM pg_stat_archiver')).rows[0];
    const before = await stats();
    await client.query(`ALTER SYSTEM SET archive_command = '${archiveCommand.replaceAll("'", "''")}'`);
    const started = performance.now();
    await client.query('SELECT pg_reload_conf()');
    for (;;) {
      await sleep(POLL_MS);
      const now = await stats();
      const archived = now.archived_count - before.archived_count;
      if (archived >= count && (await readySegments(cluster.pgdata)).length === 0) {
        return { ms: performance.now() - started, archived, failed: now.failed_count - before.failed_count };
      }
      if (performance.now() - started > timeoutMs) {
        throw new Error(
          `the archiver archived ${archived} of ${count} segments in ${timeoutMs} ms (${now.failed_count - before.failed_count} failures)\n--- server log ---\n${await cluster.logTail()}`,
        );
      }
    }
  } finally {
    await client.end();
  }
}
