/**
 * Incremental backup benchmark (issue 16): a pgbench database, a full
 * backup, `pgbench -c 4` writes for a while, then an incremental backup, by
 * gcwal (`backup-push --incremental`, file level) and by pgBackRest
 * (`backup --type=incr`, lz4, process-max 2) on the same data in the same run.
 * Figures: each backup's wall time and stored bytes, and the incremental's
 * share of its own tool's full backup. Printed, never asserted.
 */
import path from 'node:path';
import { installAgent } from '../local/testkit/install.ts';
import { startCluster } from '../local/testkit/cluster.ts';
import { repoCreate } from '../local/testkit/repo.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { configurePgBackRest, createStanza } from './lib/pgbackrest.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runOk } from './lib/proc.ts';
import { shellQuote } from './lib/shell.ts';
import { fixed, formatTable, mib } from './lib/stats.ts';

export interface IncrementalBenchOptions {
  /** pgbench scale; 70 is about 1.05 GiB */
  scale: number;
  /** seconds of pgbench -c 4 writes between the full and the incremental backup */
  seconds: number;
  log: (line: string) => void;
}

interface Row {
  name: string;
  seconds: number;
  storedBytes: number;
}

/** Run the benchmark; resolves with the printed report (Markdown). */
export async function runIncrementalBench(options: IncrementalBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the incremental bench', async (cleanups) => {
    const { log, scale } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-incremental', { owner: 'postgres' });
    cleanups.add('the incremental bench directory', work.cleanup);
    const cluster = await startCluster({ archiveCommand: 'true', settings: { max_wal_size: '4GB', checkpoint_timeout: '30min' }, timeoutSeconds: 300 });
    cleanups.add('the source cluster', () => cluster.destroy());
    const pgEnv = await postgresEnv(cluster.env);
    log(`incremental: pgbench -i -q -s ${scale}`);
    await runOk(pgTool('pgbench'), ['-i', '-q', '-s', String(scale)], { env: pgEnv });

    const repo = `file://${path.join(work.path, 'gcwal-repo')}`;
    await repoCreate(repo, cluster);
    const pgbr = await configurePgBackRest(path.join(work.path, 'pgbackrest'), cluster, { compressType: 'lz4' });
    const archive = `GCWAL_REPO=${shellQuote(repo)} ${shellQuote(agent.command)} wal-push %p && ${['pgbackrest', ...pgbr.args('archive-push')].map(shellQuote).join(' ')} %p`;
    await cluster.query(`ALTER SYSTEM SET archive_command = '${archive.replaceAll("'", "''")}'`);
    await cluster.query('SELECT pg_reload_conf()');
    await createStanza(pgbr, { env: pgEnv });
    await cluster.waitForArchived(await cluster.switchWal(), 120_000);
    const gcwalEnv = await postgresEnv({ ...cluster.env, GCWAL_REPO: repo });

    const rows: Row[] = [];
    const gcwal = async (name: string, args: string[]) => {
      log(`incremental: ${name}`);
      await cluster.query('CHECKPOINT');
      const run = await runOk(agent.command, ['backup-push', ...args, cluster.pgdata], { env: gcwalEnv, cwd: work.path });
      const backup = run.stdout.trim().split('\n').pop()!;
      const listed = JSON.parse((await runOk(agent.command, ['backup-list', '--json'], { env: gcwalEnv })).stdout) as { name: string; storedSize: number }[];
      rows.push({ name, seconds: run.ms / 1000, storedBytes: listed.find((b) => b.name === backup)!.storedSize });
    };
    const pgbackrest = async (name: string, type: string) => {
      log(`incremental: ${name}`);
      await cluster.query('CHECKPOINT');
      const run = await runOk('pgbackrest', pgbr.args('backup', `--type=${type}`, '--process-max=2'), { env: pgEnv, cwd: work.path });
      const info = JSON.parse((await runOk('pgbackrest', pgbr.args('info', '--output=json'), { env: pgEnv })).stdout) as {
        backup: { info: { repository: { delta: number } } }[];
      }[];
      rows.push({ name, seconds: run.ms / 1000, storedBytes: info[0].backup.at(-1)!.info.repository.delta });
    };

    await gcwal('gcwal backup-push (full)', []);
    await pgbackrest('pgbackrest backup --type=full', 'full');
    log(`incremental: pgbench -c 4 -T ${options.seconds}`);
    await runOk(pgTool('pgbench'), ['-c', '4', '-T', String(options.seconds), '-n'], { env: pgEnv });
    await gcwal('gcwal backup-push --incremental', ['--incremental']);
    await pgbackrest('pgbackrest backup --type=incr', 'incr');

    const share = (incr: string, full: string, key: 'seconds' | 'storedBytes') =>
      rows.find((r) => r.name === incr)![key] / rows.find((r) => r.name === full)![key];
    const table = formatTable(
      ['operation', 'seconds', 'stored MiB'],
      rows.map((r) => [r.name, fixed(r.seconds), mib(r.storedBytes)]),
    );
    return [
      `### Incremental backups, pgbench scale ${scale}, after ${options.seconds} s of pgbench -c 4`,
      '',
      table,
      '',
      `gcwal incremental ÷ full: ${fixed(share('gcwal backup-push --incremental', 'gcwal backup-push (full)', 'storedBytes'), 3)} of the bytes, ${fixed(share('gcwal backup-push --incremental', 'gcwal backup-push (full)', 'seconds'), 2)} of the time (issue 16 targets ≤ 0.10 and ≤ 0.25; file level on 15)`,
      `pgBackRest incr ÷ full: ${fixed(share('pgbackrest backup --type=incr', 'pgbackrest backup --type=full', 'storedBytes'), 3)} of the bytes, ${fixed(share('pgbackrest backup --type=incr', 'pgbackrest backup --type=full', 'seconds'), 2)} of the time`,
    ].join('\n');
  });
}
