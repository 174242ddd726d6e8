/**
 * Delta restore benchmark (issue 13 part 3): `backup-fetch --delta` of a
 * newer backup into a data directory restored from an older one, beside a
 * full `backup-fetch` of the same newer backup into an empty directory, same
 * run. Two ways of changing about 1% of a pgbench database between the
 * backups:
 *
 * - new data: a new table of about 1% of the database's size (the pgbench
 *   tables untouched);
 * - pgbench: TPC-B transactions updating 1% of pgbench_accounts' rows, at
 *   random, as a live database changes.
 *
 * gcwal's delta compares files by their CRC32C and, for files of 64 KiB and
 * more, block by block (8 KiB blocks, agent/restore/patch.ts), so the second
 * shows what is left when changes spread over most pages of a large
 * relation file. Every restore is checked: the delta and the full restore
 * give the same files with the same contents.
 *
 * Figures are printed, never asserted.
 */
import path from 'node:path';
import { startCluster } from '../local/testkit/cluster.ts';
import { execOk } from '../local/testkit/exec.ts';
import { installAgent } from '../local/testkit/install.ts';
import { runRepoCreate } from '../local/testkit/repo.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runOk, runTimed } from './lib/proc.ts';
import { fixed, formatTable, median } from './lib/stats.ts';

export interface DeltaBenchOptions {
  scale: number;
  /** timed runs of each restore */
  rounds: number;
  log: (line: string) => void;
}

/** The target: delta ≤ 25% of a full restore after a 1% change. */
const TARGET = 0.25;

/** Size and CRC of every file under `dir`, for comparing two restores. */
async function fingerprint(dir: string): Promise<string> {
  const out = await execOk('sh', ['-c', `cd "$1" && find . -type f ! -name postgresql.auto.conf -print0 | sort -z | xargs -0 cksum`, 'sh', dir]);
  return out.stdout;
}

export async function runDeltaBench(options: DeltaBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the delta bench', async (cleanups) => {
    const { log } = options;
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-delta', { owner: 'postgres' });
    cleanups.add('the delta bench directory', work.cleanup);
    const repoEnv = { GCWAL_REPO: `file://${path.join(work.path, 'repo')}` };
    const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: repoEnv, settings: { max_wal_size: '4GB' } });
    cleanups.add('the source cluster', () => source.destroy());
    await runRepoCreate(agent.command, source, repoEnv);
    const env = await postgresEnv({ ...source.env, ...repoEnv });
    const pgbench = pgTool('pgbench');
    log(`delta: pgbench -i -s ${options.scale}`);
    await runOk(pgbench, ['-i', '-q', '-s', String(options.scale)], { env });
    await source.query('CHECKPOINT');
    const push = async () => (await runOk(agent.command, ['backup-push', source.pgdata], { env })).stdout.trim().split('\n').pop()!;
    const older = await push();
    const [{ bytes }] = await source.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
    const base = path.join(work.path, 'older');
    await runOk(agent.command, ['backup-fetch', base, older], { env });

    const fetch = (dest: string, backup: string, delta: boolean) =>
      runTimed(agent.command, ['backup-fetch', dest, backup, '--recovery', ...(delta ? ['--delta'] : [])], { env });
    const scenarios: { name: string; change: () => Promise<void> }[] = [
      {
        name: 'new data: a table of 1% of the database',
        change: async () => {
          // About 300 bytes per row on disk.
          const rows = Math.max(1000, Math.round(Number(bytes) / 100 / 300));
          await source.query(`CREATE TABLE extra AS SELECT g AS n, repeat(md5(g::text), 7) AS payload FROM generate_series(1, ${rows}) g`);
        },
      },
      {
        name: 'pgbench TPC-B updating 1% of the accounts, at random',
        change: async () => {
          await runOk(pgbench, ['-n', '-c', '2', '-j', '2', '-t', String(Math.round((options.scale * 100_000) / 100 / 2))], { env });
        },
      },
    ];
    const rows: string[][] = [];
    for (const scenario of scenarios) {
      log(`delta: ${scenario.name}`);
      await scenario.change();
      await source.query('CHECKPOINT');
      const newer = await push();
      const full: number[] = [];
      const delta: number[] = [];
      let kept = '';
      for (let round = 0; round < options.rounds; round++) {
        const fullDir = path.join(work.path, `full-${rows.length}-${round}`);
        const f = await fetch(fullDir, newer, false);
        if (f.code !== 0) throw new Error(`full restore failed: ${f.stderr}`);
        full.push(f.ms);
        const deltaDir = path.join(work.path, `delta-${rows.length}-${round}`);
        await execOk('cp', ['-a', base, deltaDir]);
        const d = await fetch(deltaDir, newer, true);
        if (d.code !== 0) throw new Error(`delta restore failed: ${d.stderr}`);
        delta.push(d.ms);
        kept = /delta restore: (\d+ files \(\d+ bytes\) unchanged.*?)$/m.exec(d.stderr)?.[1] ?? '';
        if ((await fingerprint(fullDir)) !== (await fingerprint(deltaDir)))
          throw new Error(`${scenario.name}: the delta restore differs from the full restore`);
        log(`delta: full ${fixed(f.ms / 1000, 2)} s, delta ${fixed(d.ms / 1000, 2)} s (${kept})`);
        await execOk('rm', ['-rf', fullDir, deltaDir]);
      }
      rows.push([scenario.name, fixed(median(full) / 1000, 2), fixed(median(delta) / 1000, 2), `${fixed((100 * median(delta)) / median(full), 0)}%`, kept]);
    }
    return [
      `## Delta restore (pgbench -s ${options.scale}, ${(Number(bytes) / 1024 ** 2).toFixed(0)} MiB; ${options.rounds} runs each, medians)`,
      '',
      `A newer backup restored with \`backup-fetch --delta\` into a directory restored from an older one, beside a full \`backup-fetch\` into an empty directory. Target: delta ≤ ${TARGET * 100}% of full.`,
      '',
      formatTable(['change between the backups', 'full s', 'delta s', 'delta ÷ full', 'what the delta kept'], rows),
    ].join('\n');
  });
}
