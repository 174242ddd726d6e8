/**
 * Steady-state archiving (issue 17's second target): pgbench writes WAL at
 * full speed for a fixed time while PostgreSQL's archiver runs each
 * archive_command, on one cluster, the tools taking turns: pgBackRest lz4
 * (a single call per segment, the issue's reference; then `archive-async`
 * process-max 2) and gcwal with `GCWAL_ARCHIVE_ASYNC=on`, file:// and posix.
 * Each call's wall time is recorded by a wrapper around the command, and
 * archive_status is sampled for the archive lag: how many segments wait
 * `.ready`, and how long the oldest has waited. After each turn the backlog
 * is left to drain before the next tool starts, and the run checks that
 * archived_count grew by what was archived and that nothing failed.
 *
 * gcwal goes last: its background archiver outlives the turn (it exits
 * after a minute idle) and must not push during another tool's turn.
 *
 * Figures are printed, never asserted.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Cluster, startCluster } from '../local/testkit/cluster.ts';
import { execOk } from '../local/testkit/exec.ts';
import { installAgent } from '../local/testkit/install.ts';
import { repoCreate } from '../local/testkit/repo.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { configurePgBackRest, createStanza } from './lib/pgbackrest.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runOk } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, median, percentile } from './lib/stats.ts';

export interface SteadyBenchOptions {
  /** seconds pgbench writes per tool; the figure is 60 */
  seconds: number;
  /** pgbench scale */
  scale: number;
  log: (line: string) => void;
}

interface Turn {
  name: string;
  calls: number[];
  /** samples of the number of segments waiting .ready */
  waiting: number[];
  /** samples of the oldest .ready file's age, ms */
  ages: number[];
  archived: number;
  failed: number;
  load: number;
}

const SEGMENT = /^[0-9A-F]{24}$/;
const SAMPLE_MS = 250;

/** Runs the command after the log file argument and appends its wall time in ms to that file. */
const TIMER = `#!/bin/sh
log=$1; shift
s=$(date +%s%N); "$@"; rc=$?; e=$(date +%s%N)
echo $(( (e - s) / 1000000 )) >>"$log"
exit $rc
`;

/** Run the benchmark; resolves with the printed report (Markdown). */
export async function runSteadyBench(options: SteadyBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the steady-state bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-steady', { owner: 'postgres' });
    cleanups.add('the steady bench directory', work.cleanup);
    const timer = path.join(work.path, 'timed');
    await writeFile(timer, TIMER, { mode: 0o755 });
    const cluster = await startCluster({ archiveCommand: 'true', settings: { max_wal_size: '1GB', checkpoint_timeout: '30s', wal_recycle: false } });
    cleanups.add('the steady cluster', () => cluster.destroy());
    const env = await postgresEnv(cluster.env);
    log(`steady: pgbench -i -s ${options.scale}`);
    await runOk(pgTool('pgbench'), ['-i', '-q', '-s', String(options.scale)], { env });

    const pgbr = await configurePgBackRest(path.join(work.path, 'pgbackrest'), cluster, { compressType: 'lz4', processMax: 2 });
    await createStanza(pgbr, { env: await postgresEnv() });
    const gcwalRepo = `file://${path.join(work.path, 'repo')}`;
    await repoCreate(gcwalRepo, cluster);
    const gcwalEnv = `GCWAL_REPO=${shellQuote(gcwalRepo)} GCWAL_COMPRESSION=lzo GCWAL_ARCHIVE_ASYNC=on`;
    const tools = [
      { name: 'pgbackrest archive-push (lz4, posix, single call)', command: ['pgbackrest', ...pgbr.args('archive-push', '%p')].map(shellQuote).join(' ') },
      {
        name: 'pgbackrest archive-push (lz4, posix, async process-max 2)',
        command: ['pgbackrest', ...pgbr.args('archive-push', '--archive-async', '%p')].map(shellQuote).join(' '),
      },
      { name: 'gcwal wal-push (lzo, file://, GCWAL_ARCHIVE_ASYNC=on)', command: `env ${gcwalEnv} ${shellQuote(agent.command)} wal-push %p` },
    ];
    const turns: Turn[] = [];
    for (const [i, tool] of tools.entries()) {
      const callLog = path.join(work.path, `calls-${i}`);
      await writeFile(callLog, '');
      await execOk('chown', ['postgres:postgres', callLog]);
      log(`steady: ${tool.name}, pgbench for ${options.seconds} s`);
      turns.push(await runTurn(cluster, tool.name, `${shellQuote(timer)} ${shellQuote(callLog)} ${tool.command}`, callLog, options, env));
      const last = turns.at(-1)!;
      log(
        `steady: ${last.calls.length} calls, median ${fixed(median(last.calls))} ms; waiting segments max ${Math.max(0, ...last.waiting)}; oldest .ready max ${fixed(Math.max(0, ...last.ages) / 1000, 2)} s`,
      );
    }
    return formatSteadyReport(turns, options);
  });
}

async function runTurn(
  cluster: Cluster,
  name: string,
  archiveCommand: string,
  callLog: string,
  options: SteadyBenchOptions,
  env: Record<string, string>,
): Promise<Turn> {
  const stats = async () =>
    (await cluster.query<{ a: number; f: number }>('SELECT archived_count::int AS a, failed_count::int AS f FROM pg_stat_archiver'))[0]!;
  const before = await stats();
  await cluster.query(`ALTER SYSTEM SET archive_command = '${archiveCommand.replaceAll("'", "''")}'`);
  await cluster.query('SELECT pg_reload_conf()');
  const load = os.loadavg()[0]!;
  const waiting: number[] = [];
  const ages: number[] = [];
  const bench = runOk(pgTool('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(options.seconds)], { env });
  let running = true;
  void bench.finally(() => (running = false)).catch(() => {});
  while (running) {
    const ready = await readyFiles(cluster.pgdata);
    waiting.push(ready.length);
    const times = await Promise.all(
      ready.map((f) =>
        stat(f).then(
          (s) => s.mtimeMs,
          () => Date.now(),
        ),
      ),
    );
    ages.push(times.length === 0 ? 0 : Date.now() - Math.min(...times));
    await sleep(SAMPLE_MS);
  }
  await bench;
  // Drained before the next tool: nothing ready, so that each turn starts alike.
  const started = performance.now();
  while ((await readyFiles(cluster.pgdata)).length > 0) {
    if (performance.now() - started > 600_000) throw new Error(`${name}: the backlog did not drain within 10 minutes`);
    await sleep(100);
  }
  const after = await stats();
  const calls = (await readFile(callLog, 'utf8')).split('\n').filter(Boolean).map(Number);
  return { name, calls, waiting, ages, archived: after.a - before.a, failed: after.f - before.f, load };
}

async function readyFiles(pgdata: string): Promise<string[]> {
  const dir = path.join(pgdata, 'pg_wal', 'archive_status');
  return (await readdir(dir)).filter((e) => e.endsWith('.ready') && SEGMENT.test(e.slice(0, -'.ready'.length))).map((e) => path.join(dir, e));
}

function formatSteadyReport(turns: readonly Turn[], options: SteadyBenchOptions): string {
  const single = turns[0]!;
  const rows = turns.map((t) => [
    t.name,
    String(t.calls.length),
    fixed(median(t.calls)),
    fixed(percentile(t.calls, 95)),
    fixed(median(t.calls) / median(single.calls), 2),
    String(Math.max(0, ...t.waiting)),
    fixed(median(t.waiting)),
    fixed(Math.max(0, ...t.ages) / 1000, 2),
    String(t.failed),
    fixed(t.load, 2),
  ]);
  const gcwal = turns.at(-1)!;
  const maxWaiting = Math.max(0, ...gcwal.waiting);
  const ratio = median(gcwal.calls) / median(single.calls);
  return [
    `## Steady state: pgbench -c 4 -j 2 for ${options.seconds} s per tool, scale ${options.scale}, file:// and posix (${os.cpus().length} CPUs)`,
    '',
    formatTable(
      [
        'archive_command',
        'calls',
        'median ms/call',
        'p95 ms/call',
        '÷ pgBackRest lz4 single call',
        'max segments waiting',
        'median waiting',
        'oldest .ready max s',
        'failures',
        'load',
      ],
      rows,
    ),
    '',
    `Segments waiting: \`.ready\` files in archive_status, sampled every ${SAMPLE_MS} ms while pgbench wrote; each turn then drained before the next.`,
    '',
    'Targets (issue 17), gcwal async:',
    `- archive lag below 2 segments: max ${maxWaiting} waiting → ${maxWaiting < 2 ? 'met' : 'NOT met'}`,
    `- median archive_command call ≤ 1.0 × pgBackRest lz4's single call: ${fixed(ratio, 2)} × → ${ratio <= 1 ? 'met' : 'NOT met'}`,
  ].join('\n');
}
