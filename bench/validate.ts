/**
 * Validation benchmark: what the pipeline's `validate` function does per
 * object, timed in a fresh process each time, as a function instance would
 * run it: a real 16 MiB WAL segment (every codec, and lzo with native addons
 * disabled, as on a runtime where none was built), and a real backup part of
 * about 1 GiB (lzo), alone and as part of validating its whole backup.
 * Figures: wall time of the process, the time of the validation call itself,
 * peak resident memory. Printed, never asserted.
 *
 * The child is a bundle of bench/lib/validate-one.ts built with the options
 * scripts/build.mjs uses, next to the runtime packages installAgent copies,
 * so it loads what a function bundle would load.
 */
import { copyFile, chmod, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { pushBackup } from '../agent/backup/push.ts';
import { createLogger } from '../agent/log.ts';
import { createProgress } from '../agent/progress.ts';
import { pushWalFile } from '../agent/wal/push.ts';
import type { BackupMeta } from '../core/backup/meta.ts';
import type { CodecName } from '../core/codec/types.ts';
import { backupMetaKey, walObjectKey } from '../core/layout.ts';
import { FileStorage } from '../core/storage/file/storage.ts';
import { startCluster } from '../local/testkit/cluster.ts';
import { installAgent, projectRoot } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { pgTool } from './lib/pgtool.ts';
import { postgresEnv, runMeasured, runOk } from './lib/proc.ts';
import { fixed, formatTable, median, mib } from './lib/stats.ts';
import { generateWal } from './lib/walgen.ts';
import { createRepoForSegment } from './lib/repo.ts';
import { repoCreate } from '../local/testkit/repo.ts';

export interface ValidateBenchOptions {
  /** fresh processes per segment configuration */
  runs: number;
  /** pgbench scale of the database whose backup gives the big part (70 ≈ 1.05 GiB) */
  scale: number;
  log: (line: string) => void;
}

/** The targets. */
const SEGMENT_TARGET_MS = 300;
const RSS_TARGET_BYTES = 256e6;

/** One configuration measured in fresh processes. */
interface Row {
  name: string;
  walls: number[];
  loads: number[];
  calls: number[];
  rssKiB: number[];
  rawBytes: number;
  result: string;
}

interface Child {
  loadedMs: number;
  ms: number;
  ok: boolean;
  problem?: string;
  rawSize?: number;
}

/**
 * Build the data, run every configuration, and resolve with the report
 * (Markdown). Servers and directories go with `parent`'s cleanups.
 */
export async function runValidateBench(options: ValidateBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the validate bench', async (cleanups) => {
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const bundle = await buildBundle(agent.dir);
    const work = await makeTempDir('bench-validate', { owner: 'postgres' });
    cleanups.add('the validate bench directory', work.cleanup);
    const env = await postgresEnv();
    let step = 0;
    const measure = async (row: Row, nodeArgs: string[], args: string[]) => {
      const run = await runMeasured(process.execPath, [...nodeArgs, bundle, ...args], path.join(work.path, `time-${step++}.txt`), { env, cwd: work.path });
      const child = JSON.parse(run.stdout.trim().split('\n').pop()!) as Child;
      row.walls.push(run.ms);
      row.loads.push(child.loadedMs);
      row.calls.push(child.ms);
      row.rssKiB.push(run.maxRssKiB);
      row.rawBytes = child.rawSize ?? 0;
      row.result = child.ok ? 'ok' : `FAILED: ${child.problem}`;
    };
    const noNative = ['--require', path.join(agent.dir, 'no-native.cjs')];

    // WAL: real 16 MiB segments under a pgbench load, pushed with each codec.
    const wal = await generateWal({ count: 3, scale: 10, dir: path.join(work.path, 'wal'), log: options.log }, cleanups);
    const [{ id }] = await wal.cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    await wal.cluster.destroy();
    const configs: { name: string; codec: CodecName; nodeArgs: string[] }[] = [
      { name: '16 MiB segment, lzo', codec: 'lzo', nodeArgs: [] },
      { name: '16 MiB segment, lzo, no native addons', codec: 'lzo', nodeArgs: noNative },
      { name: '16 MiB segment, zstd', codec: 'zstd', nodeArgs: [] },
      { name: '16 MiB segment, gzip', codec: 'gzip', nodeArgs: [] },
      { name: '16 MiB segment, none', codec: 'none', nodeArgs: [] },
    ];
    const repos = new Map<CodecName, string>();
    for (const codec of new Set(configs.map((c) => c.codec))) {
      const url = pathToFileURL(path.join(work.path, `wal-${codec}`)).href;
      const storage = new FileStorage(url);
      await createRepoForSegment(url, wal.segments[0]);
      for (const segment of wal.segments) await pushWalFile(storage, segment, { codec, level: undefined });
      repos.set(codec, url);
    }
    const rows = configs.map((c): Row => ({ name: c.name, walls: [], loads: [], calls: [], rssKiB: [], rawBytes: 0, result: '-' }));
    options.log(`validate: ${options.runs} fresh processes per segment configuration`);
    for (let run = 0; run < options.runs; run++) {
      // Rotate the order so a burst of load elsewhere does not favour one configuration.
      for (let k = 0; k < configs.length; k++) {
        const i = (k + run) % configs.length;
        const segment = path.basename(wal.segments[run % wal.segments.length]);
        await measure(rows[i], configs[i].nodeArgs, ['wal', repos.get(configs[i].codec)!, walObjectKey(segment), id, String(16 * 1024 * 1024)]);
      }
    }

    // A backup whose biggest part is about 1 GiB.
    const backup = await bigBackup(work.path, options, cleanups);
    const partRuns = Math.max(1, Math.min(2, options.runs));
    const partRows: Row[] = [];
    const biggest = backup.meta.parts.reduce((a, b) => (b.rawSize > a.rawSize ? b : a));
    for (const [name, nodeArgs, args] of [
      [`${mib(biggest.rawSize)} MiB part (lzo), alone`, [], ['part', backup.url, biggest.key]],
      [`${mib(biggest.rawSize)} MiB part (lzo), alone, no native addons`, noNative, ['part', backup.url, biggest.key]],
      [
        `whole backup (${backup.meta.parts.length} parts, ${mib(backup.meta.rawSize)} MiB, lzo)`,
        [],
        ['backup', backup.url, backupMetaKey(backup.meta.name), backup.meta.systemIdentifier, String(backup.meta.walSegmentSize)],
      ],
    ] as const) {
      const row: Row = { name, walls: [], loads: [], calls: [], rssKiB: [], rawBytes: 0, result: '-' };
      options.log(`validate: ${name}`);
      for (let run = 0; run < partRuns; run++) await measure(row, [...nodeArgs], [...args]);
      if (row.rawBytes === 0) row.rawBytes = name.startsWith('whole') ? backup.meta.rawSize : biggest.rawSize;
      partRows.push(row);
    }
    return formatReport(rows, partRows, wal.description, backup.meta, options.runs, partRuns);
  });
}

/** Bundle the child with scripts/build.mjs's options, beside the copied runtime packages. */
export async function buildBundle(dir: string): Promise<string> {
  const outfile = path.join(dir, 'validate-one.mjs');
  await esbuild.build({
    absWorkingDir: projectRoot,
    entryPoints: [path.join(projectRoot, 'bench/lib/validate-one.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    nodePaths: [path.join(projectRoot, 'node_modules')],
    external: ['lzo', 'zstd-napi', 'fast-crc32c', 'sse4_crc32', 'lzo-wasm', '@google-cloud/storage', 'pg-native'],
    banner: { js: "import { createRequire as __gcwalCreateRequire } from 'node:module';\nconst require = __gcwalCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  const preload = path.join(dir, 'no-native.cjs');
  await copyFile(path.join(projectRoot, 'test/core/validate/no-native.cjs'), preload);
  await chmod(outfile, 0o644);
  await chmod(preload, 0o644);
  return outfile;
}

/** pgbench -i at `scale`, then a backup-push (lzo, 1 GiB parts) into a file:// repository; the cluster is removed after. */
async function bigBackup(dir: string, options: ValidateBenchOptions, cleanups: Cleanups): Promise<{ url: string; meta: BackupMeta }> {
  const cluster = await startCluster({ archiveCommand: 'true', settings: { max_wal_size: '4GB', checkpoint_timeout: '30min' }, timeoutSeconds: 300 });
  cleanups.add('the backup source cluster', () => cluster.destroy());
  try {
    options.log(`validate: pgbench -i -q -s ${options.scale}`);
    await runOk(pgTool('pgbench'), ['-i', '-q', '-s', String(options.scale)], { env: await postgresEnv(cluster.env) });
    await cluster.query('CHECKPOINT');
    options.log('validate: backup-push (lzo, 1 GiB parts)');
    const url = pathToFileURL(path.join(dir, 'backup')).href;
    await repoCreate(url, cluster);
    const quiet = new PassThrough().resume();
    const meta = await pushBackup({
      pgdata: cluster.pgdata,
      storage: new FileStorage(url),
      config: {
        compression: 'lzo',
        compressionLevel: undefined,
        concurrency: 2,
        partSize: 1024 * 1024 * 1024,
        retries: 0,
        pg: { host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres', password: undefined },
      },
      log: createLogger(quiet, 'text', false),
      signal: new AbortController().signal,
      version: 'bench',
      progress: (label) => createProgress({ out: quiet, interactive: false, label }),
      archiveCheck: false, // archive_command is `true`: no WAL reaches this repository
    });
    await stat(path.join(dir, 'backup'));
    return { url, meta };
  } finally {
    await cluster.destroy();
  }
}

function tableOf(rows: readonly Row[]): string {
  return formatTable(
    ['validation', 'runs', 'process wall ms', 'start-up + load ms', 'validate call ms', 'decoded MiB/s', 'peak RSS MiB', 'result'],
    rows.map((r) => [
      r.name,
      String(r.walls.length),
      fixed(median(r.walls)),
      fixed(median(r.loads)),
      fixed(median(r.calls)),
      fixed(r.rawBytes / 1024 / 1024 / (median(r.calls) / 1000)),
      fixed(Math.max(...r.rssKiB) / 1024),
      r.result,
    ]),
  );
}

function formatReport(segments: readonly Row[], parts: readonly Row[], walDescription: string, meta: BackupMeta, runs: number, partRuns: number): string {
  const lzo = segments[0];
  const all = [...segments, ...parts];
  const worst = all.reduce((a, b) => (Math.max(...b.rssKiB) > Math.max(...a.rssKiB) ? b : a));
  return [
    `## validate (${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})`,
    '',
    `Each row: a fresh \`node validate-one.mjs\` process (a bundle like a function's), as postgres, under /usr/bin/time -v; medians over ${runs} runs for segments, ${partRuns} for the part and the backup; peak RSS is the largest.`,
    `WAL: ${walDescription}. Backup: ${meta.parts.length} parts, ${mib(meta.rawSize)} MiB of files, ${mib(meta.storedSize)} MiB stored.`,
    '',
    tableOf(segments),
    '',
    tableOf(parts),
    '',
    `Targets: a 16 MiB segment (lzo) validated in under ${SEGMENT_TARGET_MS} ms: validate call ${fixed(median(lzo.calls))} ms → ${median(lzo.calls) < SEGMENT_TARGET_MS ? 'met' : 'NOT met'} (whole process ${fixed(median(lzo.walls))} ms); ` +
      `peak RSS under 256 MB (${fixed(RSS_TARGET_BYTES / 1024 / 1024)} MiB): largest ${fixed(Math.max(...worst.rssKiB) / 1024)} MiB (${worst.name}) → ${Math.max(...worst.rssKiB) * 1024 < RSS_TARGET_BYTES ? 'met' : 'NOT met'}.`,
  ].join('\n');
}
