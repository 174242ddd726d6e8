/**
 * Backup benchmark: `gcwal backup-push` and `gcwal backup-fetch` of a pgbench
 * database beside `pgbackrest backup --type=full` and `pgbackrest restore`,
 * on the same data, machine and run. Figures: wall time, throughput (raw
 * data directory bytes / wall seconds), peak resident memory, stored size.
 * Every restore is started and its pgbench_accounts rows counted, so each
 * figure is for a restore that works. Run at two scales to show whether
 * gcwal's memory depends on the database size.
 *
 * gcwal runs with its defaults (lzo, GCWAL_CONCURRENCY 4). pgBackRest uses
 * compress-type lz4, at its default process-max 1 and at 2 (this machine's
 * cores). Its default gz is left out: single-threaded gzip level 6 is several
 * times slower than either, which says nothing about gcwal.
 *
 * Figures are printed, never asserted.
 */
import os from 'node:os';
import path from 'node:path';
import { installAgent, type InstalledAgent } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import { startCluster } from '../local/testkit/cluster.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { dataDirBytes, emptyRestoreDir, verifyRestore } from './lib/datadir.ts';
import { profileGcwal } from './lib/cpuprofile.ts';
import { configurePgBackRest, createStanza } from './lib/pgbackrest.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runMeasured, runOk, type MeasuredRun } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, mib } from './lib/stats.ts';
import { repoCreate } from '../local/testkit/repo.ts';

export interface BackupBenchOptions {
  /** pgbench scale of the main database; 70 is about 1.05 GiB */
  scale: number;
  /** a second, smaller scale for the memory comparison; 0 to skip */
  smallScale: number;
  /** also CPU-profile one more gcwal backup-push and backup-fetch at the main scale */
  profile: boolean;
  log: (line: string) => void;
}

/** One measured operation. */
export interface OpRow {
  name: string;
  seconds: number;
  /** raw data directory bytes / seconds, in MiB/s */
  mibPerSecond: number;
  maxRssKiB: number;
  treePeakKiB: number;
  storedBytes: number | undefined;
  /** for restores: pgbench_accounts rows counted in the started copy, and whether that is every row */
  check: string;
}

/** Everything measured at one scale. */
export interface ScaleResult {
  scale: number;
  rawBytes: number;
  initSeconds: number;
  rows: OpRow[];
  /** CPU profile summaries (Markdown), when asked for */
  profiles: string[];
}

/** The gcwal peak RSS limit issue 13 sets: 128 MiB, whatever the size. */
const RSS_TARGET_BYTES = 128 * 1024 * 1024;

/**
 * Run the benchmark at each scale, smallest first; resolves with the printed
 * report (Markdown). Each scale's servers and directories are removed before
 * the next starts, or by `parent` if the process is interrupted first.
 */
export async function runBackupBench(options: BackupBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the backup bench', async (cleanups) => {
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const scales = [...new Set([options.smallScale, options.scale].filter((s) => s > 0))].sort((a, b) => a - b);
    const results: ScaleResult[] = [];
    for (const scale of scales) {
      const profile = options.profile && scale === options.scale;
      results.push(await cleanups.scope(`scale ${scale}`, (scoped) => benchScale(agent, scale, profile, options.log, scoped)));
    }
    return formatBackupReport(results);
  });
}

async function benchScale(agent: InstalledAgent, scale: number, profile: boolean, log: (line: string) => void, cleanups: Cleanups): Promise<ScaleResult> {
  const work = await makeTempDir('bench-backup', { owner: 'postgres' });
  cleanups.add('the backup bench directory', work.cleanup);
  const cluster = await startCluster({ archiveCommand: 'true', settings: { max_wal_size: '4GB', checkpoint_timeout: '30min' }, timeoutSeconds: 300 });
  cleanups.add('the source cluster', () => cluster.destroy());
  const pgEnv = await postgresEnv(cluster.env);

  log(`backup: pgbench -i -q -s ${scale}`);
  const init = await runOk(pgTool('pgbench'), ['-i', '-q', '-s', String(scale)], { env: pgEnv });

  // Archive into both repositories from now on (the load's own WAL went to `true`).
  const repo = `file://${path.join(work.path, 'gcwal-repo')}`;
  await repoCreate(repo, cluster);
  const pgbr = await configurePgBackRest(path.join(work.path, 'pgbackrest'), cluster, { compressType: 'lz4' });
  const archive = `GCWAL_REPO=${shellQuote(repo)} ${shellQuote(agent.command)} wal-push %p && ${['pgbackrest', ...pgbr.args('archive-push')].map(shellQuote).join(' ')} %p`;
  await cluster.query(`ALTER SYSTEM SET archive_command = '${archive.replaceAll("'", "''")}'`);
  await cluster.query('SELECT pg_reload_conf()');
  await createStanza(pgbr, { env: pgEnv });
  await cluster.waitForArchived(await cluster.switchWal(), 120_000);
  const rawBytes = await dataDirBytes(cluster.pgdata);
  log(`backup: scale ${scale}: ${mib(rawBytes)} MiB in the data directory`);

  const gcwalEnv = await postgresEnv({ ...cluster.env, GCWAL_REPO: repo });
  const rows: OpRow[] = [];
  let step = 0;
  const measure = async (name: string, file: string, args: string[], env: Record<string, string>): Promise<MeasuredRun> => {
    log(`backup: scale ${scale}: ${name}`);
    const run = await runMeasured(file, args, path.join(work.path, `time-${step++}.txt`), { env, cwd: work.path });
    rows.push({
      name,
      seconds: run.ms / 1000,
      mibPerSecond: rawBytes / 1024 / 1024 / (run.ms / 1000),
      maxRssKiB: run.maxRssKiB,
      treePeakKiB: run.treePeakKiB,
      storedBytes: undefined,
      check: '-',
    });
    return run;
  };

  // Backups, each after a checkpoint so none pays for another's dirty buffers.
  await cluster.query('CHECKPOINT');
  const pushed = await measure('gcwal backup-push', agent.command, ['backup-push', cluster.pgdata], gcwalEnv);
  const backupName = pushed.stdout.trim().split('\n').pop()!;
  rows.at(-1)!.storedBytes = await gcwalStoredBytes(agent, gcwalEnv, backupName);
  const labels: Record<string, string> = {};
  for (const processMax of [1, 2]) {
    await cluster.query('CHECKPOINT');
    await measure(`pgbackrest backup lz4 process-max=${processMax}`, 'pgbackrest', pgbr.args('backup', '--type=full', `--process-max=${processMax}`), pgEnv);
    const latest = await pgBackRestLatest(pgbr.args('info', '--output=json'), pgEnv);
    labels[processMax] = latest.label;
    rows.at(-1)!.storedBytes = latest.storedBytes;
  }

  // Restores, each started and counted, then removed.
  const expected = scale * 100_000;
  const verify = async (dest: string) => {
    const rowsCounted = await verifyRestore(dest);
    rows.at(-1)!.check = `${rowsCounted} rows ${rowsCounted === expected ? 'ok' : `WRONG (expected ${expected})`}`;
  };
  const gcwalDest = path.join(work.path, 'restore-gcwal');
  await measure(
    'gcwal backup-fetch',
    agent.command,
    ['backup-fetch', gcwalDest, backupName, '--target-immediate', '--target-action', 'promote', '--gcwal-command', agent.command],
    gcwalEnv,
  );
  await verify(gcwalDest);
  for (const processMax of [1, 2]) {
    const dest = path.join(work.path, `restore-pgbackrest-${processMax}`);
    await emptyRestoreDir(dest);
    const args = pgbr.args(
      'restore',
      `--pg1-path=${dest}`,
      `--set=${labels[processMax]}`,
      '--type=immediate',
      '--target-action=promote',
      `--process-max=${processMax}`,
    );
    await measure(`pgbackrest restore process-max=${processMax}`, 'pgbackrest', args, pgEnv);
    await verify(dest);
  }
  const profiles: string[] = [];
  if (profile) {
    for (const [command, args] of [
      ['backup-push', [cluster.pgdata]],
      ['backup-fetch', [path.join(work.path, 'restore-profiled'), backupName]],
    ] as const) {
      log(`backup: scale ${scale}: gcwal ${command} under node --cpu-prof`);
      await cluster.query('CHECKPOINT');
      const { ms, summary } = await profileGcwal(agent.dir, [command, ...args], {
        env: gcwalEnv,
        cwd: work.path,
        dir: path.join(work.path, `profile-${command}`),
      });
      profiles.push(`#### gcwal ${command}, CPU profile (${(ms / 1000).toFixed(1)} s wall while profiled), main thread self time\n\n${summary}`);
    }
  }
  return { scale, rawBytes, initSeconds: init.ms / 1000, rows, profiles };
}

/** The stored size of a gcwal backup, from backup-list --json. */
async function gcwalStoredBytes(agent: InstalledAgent, env: Record<string, string>, name: string): Promise<number | undefined> {
  const listed = await runOk(agent.command, ['backup-list', '--json'], { env });
  const backups = JSON.parse(listed.stdout) as { name: string; storedSize: number }[];
  return backups.find((b) => b.name === name)?.storedSize;
}

/** The newest backup in `pgbackrest info --output=json`: its label and repository size. */
async function pgBackRestLatest(args: string[], env: Record<string, string>): Promise<{ label: string; storedBytes: number }> {
  const info = JSON.parse((await runOk('pgbackrest', args, { env })).stdout) as { backup: { label: string; info: { repository: { size: number } } }[] }[];
  const latest = info[0]?.backup.at(-1);
  if (!latest) throw new Error('pgbackrest info lists no backup');
  return { label: latest.label, storedBytes: latest.info.repository.size };
}

/** The tables for every scale, then the memory and throughput verdicts. */
export function formatBackupReport(results: readonly ScaleResult[]): string {
  const parts = [
    `## backup-push / backup-fetch (${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})`,
  ];
  for (const r of results) {
    parts.push(
      '',
      `### pgbench scale ${r.scale}: ${mib(r.rawBytes)} MiB data directory (without pg_wal), pgbench -i took ${r.initSeconds.toFixed(0)} s`,
      '',
      formatTable(
        ['operation', 'seconds', 'raw MiB/s', 'peak RSS MiB', 'peak RSS MiB, process tree', 'stored MiB', 'restore started, pgbench_accounts'],
        r.rows.map((o) => [
          o.name,
          fixed(o.seconds, 2),
          fixed(o.mibPerSecond),
          fixed(o.maxRssKiB / 1024),
          fixed(o.treePeakKiB / 1024),
          o.storedBytes === undefined ? '-' : mib(o.storedBytes),
          o.check,
        ]),
      ),
    );
    for (const p of r.profiles) parts.push('', p);
  }
  parts.push('', `gcwal peak RSS target: under ${fixed(RSS_TARGET_BYTES / 1024 / 1024)} MiB at every size:`);
  for (const op of ['gcwal backup-push', 'gcwal backup-fetch']) {
    const figures = results.map((r) => ({ scale: r.scale, kib: r.rows.find((o) => o.name === op)?.maxRssKiB ?? Number.NaN }));
    const met = figures.every((f) => f.kib * 1024 < RSS_TARGET_BYTES);
    parts.push(`- ${op}: ${figures.map((f) => `${fixed(f.kib / 1024)} MiB at scale ${f.scale}`).join(', ')} → ${met ? 'met' : 'NOT met'}`);
  }
  const main = results.at(-1);
  if (main) {
    const speed = (name: string) => main.rows.find((o) => o.name === name)?.mibPerSecond ?? Number.NaN;
    parts.push(
      '',
      `Throughput at scale ${main.scale}: gcwal backup-push ${fixed(speed('gcwal backup-push'))} MiB/s vs pgBackRest lz4 ${fixed(speed('pgbackrest backup lz4 process-max=1'))} (process-max 1) / ${fixed(speed('pgbackrest backup lz4 process-max=2'))} (process-max 2); ` +
        `gcwal backup-fetch ${fixed(speed('gcwal backup-fetch'))} MiB/s vs pgBackRest restore ${fixed(speed('pgbackrest restore process-max=1'))} / ${fixed(speed('pgbackrest restore process-max=2'))}.`,
      '',
      // Issue 13's targets: at least pgBackRest's throughput at process-max 2 (this machine's cores), same run.
      `Targets (gcwal ÷ pgBackRest process-max 2, ≥ 1.00): backup-push ${fixed(speed('gcwal backup-push') / speed('pgbackrest backup lz4 process-max=2'), 2)}, backup-fetch ${fixed(speed('gcwal backup-fetch') / speed('pgbackrest restore process-max=2'), 2)}.`,
    );
  }
  return parts.join('\n');
}
