/**
 * Real WAL for the wal-push benchmark: a cluster under a pgbench TPC-B load
 * whose archive_command copies every finished segment into a directory.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { execOk } from '../../local/testkit/exec.ts';
import { pgTool } from './pgtool.ts';
import type { Cleanups } from './cleanup.ts';
import { postgresEnv, runOk } from './proc.ts';

const SEGMENT = /^[0-9A-F]{24}$/;

/** Collected segments and the cluster that wrote them (still running, idle). */
export interface GeneratedWal {
  cluster: Cluster;
  /** directory holding the copies */
  dir: string;
  /** a complete segment from before the load, for warm-up runs */
  warmup: string;
  /** `count` consecutive complete segments written under the load, in WAL order */
  segments: string[];
  /** what produced them, for the report */
  description: string;
}

export interface WalGenOptions {
  /** how many segments to collect */
  count: number;
  /** pgbench scale of the database the load runs on */
  scale: number;
  /** where the copies go: a directory the postgres user can write */
  dir: string;
  /** progress lines */
  log: (line: string) => void;
}

/**
 * Start a cluster archiving with `cp`, initialise a pgbench database, switch
 * WAL, then run `pgbench -c 4 -j 2` in 10-second rounds until `count` + 1
 * segments written after the switch have been copied (the last one may still
 * be in the middle of its copy, so it is not used). checkpoint_timeout is
 * 30 s so full-page images keep appearing, as on a busy server. The cluster
 * is registered with `cleanups`.
 */
export async function generateWal(options: WalGenOptions, cleanups: Cleanups): Promise<GeneratedWal> {
  await mkdir(options.dir, { recursive: true });
  await execOk('chown', ['postgres:postgres', options.dir]);
  const cluster = await startCluster({ archiveCommand: `cp %p ${options.dir}/%f`, settings: { checkpoint_timeout: '30s', max_wal_size: '1GB' } });
  cleanups.add('the WAL source cluster', () => cluster.destroy());
  const env = await postgresEnv(cluster.env);
  const pgbench = pgTool('pgbench');

  options.log(`wal: pgbench -i -s ${options.scale}`);
  await runOk(pgbench, ['-i', '-q', '-s', String(options.scale)], { env });
  const warmup = await cluster.switchWal();
  await cluster.waitForArchived(warmup, 120_000);

  const started = performance.now();
  let transactions = 0;
  let segments: string[] = [];
  for (let round = 0; segments.length < options.count + 1; round++) {
    if (round >= 90) throw new Error(`only ${segments.length} segments after ${round} rounds of pgbench`);
    const run = await runOk(pgbench, ['-n', '-c', '4', '-j', '2', '-T', '10'], { env });
    transactions += Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1] ?? 0);
    segments = (await readdir(options.dir)).filter((f) => SEGMENT.test(f) && f > warmup).sort();
    options.log(`wal: ${segments.length}/${options.count + 1} segments after ${Math.round((performance.now() - started) / 1000)} s of pgbench`);
  }
  const seconds = (performance.now() - started) / 1000;
  const description = `pgbench -s ${options.scale} TPC-B (-c 4 -j 2, fsync off, checkpoint_timeout 30s): ${transactions} transactions in ${seconds.toFixed(0)} s`;
  return {
    cluster,
    dir: options.dir,
    warmup: path.join(options.dir, warmup),
    segments: segments.slice(0, options.count).map((s) => path.join(options.dir, s)),
    description,
  };
}
