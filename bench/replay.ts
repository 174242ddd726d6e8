/**
 * Archive recovery benchmark (issue 13): how long PostgreSQL takes to replay
 * N segments of real pgbench WAL after a base backup when restore_command is
 * `cp` from a plain local directory, beside `gcwal wal-fetch %f %p` with
 * prefetch (its default) from a file:// repository and from a gs://
 * repository on the local stack (emulator over HTTPS, keyless auth through
 * the metadata-server stand-in). Same backup, same WAL, same run.
 *
 * One source cluster archives every segment three ways at once (cp into a
 * directory, wal-push into each repository); one backup-fetch gives the
 * starting data directory, copied afresh for each run, whose restore_command
 * is then set to the tool's. A run is timed from `pg_ctl start` until
 * recovery has ended (pg_is_in_recovery() false, polled every 20 ms);
 * PostgreSQL's own "redo done ... elapsed" is printed beside it. Each run is
 * checked: every pgbench transaction of the source is there, and for gcwal
 * the prefetcher's count of segments served from the spool.
 *
 * Figures are printed, never asserted.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLocalStack } from '../local/stack.ts';
import { startCluster, startClusterFromDirectory } from '../local/testkit/cluster.ts';
import { execOk } from '../local/testkit/exec.ts';
import { installAgent } from '../local/testkit/install.ts';
import { runRepoCreate } from '../local/testkit/repo.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runOk } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, median } from './lib/stats.ts';

export interface ReplayBenchOptions {
  /** segments written after the backup that recovery replays; default 42 */
  segments: number;
  /** timed recoveries per tool, in alternating order; default 2 */
  rounds: number;
  /** pgbench scale of the database */
  scale: number;
  log: (line: string) => void;
}

interface Tool {
  name: string;
  restoreCommand: string;
  serverEnv: Record<string, string>;
  gcwal: boolean;
}

interface Run {
  ms: number;
  redoS: number | undefined;
  served: number | undefined;
}

const SEGMENT = /^[0-9A-F]{24}$/;
/** The issue's target: gcwal with prefetch ÷ cp, on both repositories. */
const TARGET = 1.3;

/**
 * Run the benchmark; resolves with the printed report (Markdown). Everything
 * it starts is stopped and removed when it ends, or by `parent` if the
 * process is interrupted first.
 */
export async function runReplayBench(options: ReplayBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the replay bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-replay', { owner: 'postgres' });
    cleanups.add('the replay bench directory', work.cleanup);
    const stack = await startLocalStack({ https: true, prefix: 'bench/replay' });
    cleanups.add('the local GCS stack', () => stack.close());
    const archive = path.join(work.path, 'archive');
    await mkdir(archive);
    await execOk('chown', ['postgres:postgres', archive]);
    const fileEnv = { GCWAL_REPO: `file://${path.join(work.path, 'repo')}` };
    const gcsEnv = { ...stack.env };
    const gcwal = shellQuote(agent.command);
    const inline = (env: Record<string, string>) =>
      Object.entries(env)
        .map(([k, v]) => `${k}=${shellQuote(v)}`)
        .join(' ');

    // The source: every segment into the directory and both repositories.
    const archiveCommand = `cp %p ${shellQuote(archive)}/%f && ${inline(fileEnv)} ${gcwal} wal-push %p && ${inline(gcsEnv)} ${gcwal} wal-push %p`;
    const source = await startCluster({ archiveCommand, settings: { checkpoint_timeout: '30s', max_wal_size: '1GB' } });
    cleanups.add('the source cluster', () => source.destroy());
    await runRepoCreate(agent.command, source, fileEnv);
    await runRepoCreate(agent.command, source, gcsEnv);
    const env = await postgresEnv(source.env);
    const pgbench = pgTool('pgbench');
    log(`replay: pgbench -i -s ${options.scale}`);
    await runOk(pgbench, ['-i', '-q', '-s', String(options.scale)], { env });
    await source.waitForArchived(await source.switchWal(), 120_000);
    const pushed = await runOk(agent.command, ['backup-push', source.pgdata], { env: { ...env, ...fileEnv } });
    const backup = pushed.stdout.trim().split('\n').pop()!;
    const afterBackup = await source.switchWal();
    await source.waitForArchived(afterBackup, 120_000);

    // The WAL to replay: pgbench rounds until N segments were written after the backup.
    let segments = 0;
    for (let round = 0; segments < options.segments; round++) {
      if (round >= 90) throw new Error(`only ${segments} segments after ${round} rounds of pgbench`);
      await runOk(pgbench, ['-n', '-c', '4', '-j', '2', '-T', '5'], { env });
      const [{ lsn }] = await source.query<{ lsn: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS lsn');
      segments = Number(BigInt(`0x${lsn.slice(8)}`) - BigInt(`0x${afterBackup.slice(8)}`));
      log(`replay: ${segments}/${options.segments} segments after the backup`);
    }
    await source.waitForArchived(await source.switchWal(), 300_000);
    const [{ n: transactions }] = await source.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history');
    await source.stop();

    const base = path.join(work.path, 'base');
    await runOk(agent.command, ['backup-fetch', base, backup, '--recovery', '--gcwal-command', agent.command], { env: { ...env, ...fileEnv } });
    const replayed = (await readdir(archive)).filter((n) => SEGMENT.test(n) && n >= afterBackup).length;

    const tools: Tool[] = [
      { name: `cp from a local directory`, restoreCommand: `cp ${archive}/%f %p`, serverEnv: {}, gcwal: false },
      { name: 'gcwal wal-fetch with prefetch (file://)', restoreCommand: `${agent.command} wal-fetch %f %p`, serverEnv: fileEnv, gcwal: true },
      { name: 'gcwal wal-fetch with prefetch (gs:// https, local stack)', restoreCommand: `${agent.command} wal-fetch %f %p`, serverEnv: gcsEnv, gcwal: true },
    ];
    const runs = new Map<string, Run[]>(tools.map((t) => [t.name, []]));
    let seq = 0;
    for (let round = 0; round < options.rounds; round++) {
      for (const tool of round % 2 === 0 ? tools : [...tools].reverse()) {
        const dir = path.join(work.path, `run-${seq++}`);
        await execOk('cp', ['-a', base, dir]);
        const run = await recoverOnce(tool, dir, transactions);
        runs.get(tool.name)!.push(run);
        log(`replay: ${tool.name}: ${fixed(run.ms / 1000, 2)} s${run.served === undefined ? '' : `, ${run.served} segments served from the spool`}`);
        await execOk('rm', ['-rf', dir]);
      }
    }

    const cpMedian = median(runs.get(tools[0].name)!.map((r) => r.ms));
    const rows = tools.map((tool) => {
      const r = runs.get(tool.name)!;
      const ms = median(r.map((x) => x.ms));
      const redo = r.map((x) => x.redoS).filter((x): x is number => x !== undefined);
      const served = r.map((x) => x.served).filter((x): x is number => x !== undefined);
      return [
        tool.name,
        fixed(ms / 1000, 2),
        r.map((x) => fixed(x.ms / 1000, 2)).join(', '),
        redo.length ? fixed(median(redo), 2) : '',
        served.length ? served.join(', ') : '',
        tool.gcwal ? `${fixed(ms / cpMedian, 2)}×` : '1.00×',
      ];
    });
    return [
      `## Archive recovery (${replayed} segments of pgbench -s ${options.scale} WAL after a base backup, ${options.rounds} runs each, same run)`,
      '',
      `Target: gcwal with prefetch ≤ ${TARGET}× \`cp\` on both repositories. Wall time from \`pg_ctl start\` to the end of recovery; "redo" is PostgreSQL's own "redo done … elapsed".`,
      '',
      formatTable(['restore_command', 'median s', 'runs s', 'redo s (median)', 'served from spool', '÷ cp'], rows),
    ].join('\n');
  });
}

/** Start a copy of the base with the tool's restore_command, wait for the end of recovery, check the rows. */
async function recoverOnce(tool: Tool, dir: string, transactions: string): Promise<Run> {
  await execOk('sh', [
    '-c',
    `printf '%s\\n' ${shellQuote(`restore_command = '${tool.restoreCommand.replace(/'/g, "''")}'`)} >> ${shellQuote(path.join(dir, 'postgresql.auto.conf'))}`,
  ]);
  const started = performance.now();
  const cluster = await startClusterFromDirectory(dir, { serverEnv: tool.serverEnv, wait: false, timeoutSeconds: 600 });
  try {
    let ms = 0;
    for (const deadline = Date.now() + 900_000; ; await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`${tool.name}: recovery did not end:\n${await cluster.logTail()}`);
      const inRecovery = await cluster.isInRecovery().catch(() => undefined);
      if (inRecovery === false) {
        ms = performance.now() - started;
        break;
      }
    }
    const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history');
    if (n !== transactions) throw new Error(`${tool.name}: ${n} pgbench transactions after recovery, the source had ${transactions}`);
    const logText = await readFile(cluster.logFile, 'utf8');
    const redo = /redo done at .*elapsed: ([\d.]+) s/.exec(logText);
    let served: number | undefined;
    if (tool.gcwal) {
      for (const deadline = Date.now() + 10_000; served === undefined && Date.now() < deadline; await sleep(100)) {
        const m = /prefetch stopped: recovery ended spooled=\d+ served=(\d+)/.exec(await readFile(cluster.logFile, 'utf8'));
        if (m) served = Number(m[1]);
      }
    }
    return { ms, redoS: redo ? Number(redo[1]) : undefined, served };
  } finally {
    await cluster.destroy();
  }
}
