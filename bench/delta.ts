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
 * The peer, same run, same changes: pgBackRest 2.45 (lz4, process-max 2,
 * this machine's cores) `restore` of its own full backup of the same
 * database into an empty directory, and `restore --delta` of it into a
 * directory restored from its older backup. pgBackRest's delta compares
 * each file's SHA-1 with its manifest and copies changed files whole.
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
import { emptyRestoreDir } from './lib/datadir.ts';
import { configurePgBackRest, createStanza } from './lib/pgbackrest.ts';
import { profileGcwal } from './lib/cpuprofile.ts';
import { pgTool } from './lib/pgtool.ts';
import { shellQuote } from './lib/shell.ts';
import { postgresEnv, runOk, runTimed } from './lib/proc.ts';
import { fixed, formatTable, median } from './lib/stats.ts';

export interface DeltaBenchOptions {
  scale: number;
  /** timed runs of each restore */
  rounds: number;
  /** CPU-profile one more gcwal delta restore per change (node --cpu-prof) */
  profile?: boolean;
  log: (line: string) => void;
}

/** The target: delta ≤ 25% of a full restore after a 1% change. */
const TARGET = 0.25;
/** pgBackRest's process-max: this machine's cores, as in the backup bench's target. */
const PROCESS_MAX = 2;

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
    // The peer archives every segment too, so both tools' backups complete.
    const pgbr = await configurePgBackRest(path.join(work.path, 'pgbackrest'), source, { compressType: 'lz4', processMax: PROCESS_MAX });
    const archive = `${shellQuote(agent.command)} wal-push %p && ${['pgbackrest', ...pgbr.args('archive-push')].map(shellQuote).join(' ')} %p`;
    await source.query(`ALTER SYSTEM SET archive_command = '${archive.replaceAll("'", "''")}'`);
    await source.query('SELECT pg_reload_conf()');
    await createStanza(pgbr, { env });
    const pgbrBackup = async (): Promise<string> => {
      await runOk('pgbackrest', pgbr.args('backup', '--type=full', `--process-max=${PROCESS_MAX}`), { env });
      const info = JSON.parse((await runOk('pgbackrest', pgbr.args('info', '--output=json'), { env })).stdout) as { backup: { label: string }[] }[];
      return info[0].backup.at(-1)!.label;
    };
    const pgbrRestore = async (dest: string, label: string, delta: boolean) =>
      runTimed('pgbackrest', pgbr.args('restore', `--pg1-path=${dest}`, `--set=${label}`, `--process-max=${PROCESS_MAX}`, ...(delta ? ['--delta'] : [])), {
        env,
      });
    const pgbench = pgTool('pgbench');
    log(`delta: pgbench -i -s ${options.scale}`);
    await runOk(pgbench, ['-i', '-q', '-s', String(options.scale)], { env });
    await source.query('CHECKPOINT');
    const push = async () => (await runOk(agent.command, ['backup-push', source.pgdata], { env })).stdout.trim().split('\n').pop()!;
    const older = await push();
    const [{ bytes }] = await source.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
    const base = path.join(work.path, 'older');
    await runOk(agent.command, ['backup-fetch', base, older], { env });
    await source.query('CHECKPOINT');
    const olderPgbr = await pgbrBackup();
    const basePgbr = path.join(work.path, 'older-pgbackrest');
    await emptyRestoreDir(basePgbr);
    await runOk('pgbackrest', pgbr.args('restore', `--pg1-path=${basePgbr}`, `--set=${olderPgbr}`, `--process-max=${PROCESS_MAX}`), { env });

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
    const profiles: string[] = [];
    for (const scenario of scenarios) {
      log(`delta: ${scenario.name}`);
      await scenario.change();
      await source.query('CHECKPOINT');
      const newer = await push();
      await source.query('CHECKPOINT');
      const newerPgbr = await pgbrBackup();
      const full: number[] = [];
      const delta: number[] = [];
      const peerFull: number[] = [];
      const peerDelta: number[] = [];
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

        const peerFullDir = path.join(work.path, `pgbr-full-${rows.length}-${round}`);
        await emptyRestoreDir(peerFullDir);
        const pf = await pgbrRestore(peerFullDir, newerPgbr, false);
        if (pf.code !== 0) throw new Error(`pgbackrest restore failed: ${pf.stderr}`);
        peerFull.push(pf.ms);
        const peerDeltaDir = path.join(work.path, `pgbr-delta-${rows.length}-${round}`);
        await execOk('cp', ['-a', basePgbr, peerDeltaDir]);
        const pd = await pgbrRestore(peerDeltaDir, newerPgbr, true);
        if (pd.code !== 0) throw new Error(`pgbackrest restore --delta failed: ${pd.stderr}`);
        peerDelta.push(pd.ms);
        log(`delta: pgbackrest full ${fixed(pf.ms / 1000, 2)} s, delta ${fixed(pd.ms / 1000, 2)} s`);
        await execOk('rm', ['-rf', peerFullDir, peerDeltaDir]);
      }
      if (options.profile) {
        const profiled = path.join(work.path, `delta-profiled-${rows.length}`);
        await execOk('cp', ['-a', base, profiled]);
        log(`delta: ${scenario.name}: gcwal backup-fetch --delta under node --cpu-prof`);
        const { ms, summary } = await profileGcwal(agent.dir, ['backup-fetch', profiled, newer, '--recovery', '--delta'], {
          env,
          cwd: work.path,
          dir: path.join(work.path, `profile-${rows.length}`),
        });
        profiles.push(
          `#### gcwal backup-fetch --delta, ${scenario.name}: CPU profile (${fixed(ms / 1000, 1)} s wall while profiled), main thread self time\n\n${summary}`,
        );
        await execOk('rm', ['-rf', profiled]);
      }
      const share = (d: number[], f: number[]) => `${fixed((100 * median(d)) / median(f), 0)}%`;
      rows.push([
        scenario.name,
        fixed(median(full) / 1000, 2),
        fixed(median(delta) / 1000, 2),
        share(delta, full),
        fixed(median(peerFull) / 1000, 2),
        fixed(median(peerDelta) / 1000, 2),
        share(peerDelta, peerFull),
        fixed(median(peerDelta) / median(delta), 2),
        kept,
      ]);
    }
    return [
      `## Delta restore (pgbench -s ${options.scale}, ${(Number(bytes) / 1024 ** 2).toFixed(0)} MiB; ${options.rounds} runs each, medians)`,
      '',
      `A newer backup restored with \`backup-fetch --delta\` into a directory restored from an older one, beside a full \`backup-fetch\` into an empty directory; pgBackRest (lz4, process-max ${PROCESS_MAX}) \`restore\` and \`restore --delta\` of its own backups of the same states, same run. Target: gcwal's delta ≤ ${TARGET * 100}% of its full restore.`,
      '',
      formatTable(
        [
          'change between the backups',
          'gcwal full s',
          'gcwal delta s',
          'delta ÷ full',
          'pgBackRest full s',
          'pgBackRest delta s',
          'delta ÷ full',
          'pgBackRest delta ÷ gcwal delta',
          'what the gcwal delta kept',
        ],
        rows,
      ),
      ...profiles.flatMap((p) => ['', p]),
    ].join('\n');
  });
}
