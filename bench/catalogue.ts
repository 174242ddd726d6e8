/**
 * Catalogue benchmark (issue 15 part 1): what one catalogue update costs a
 * function, and what `gcwal status` costs, on a synthetic archive of 30 days
 * at one 16 MiB segment a second (2,592,000 WAL files) with 1,000 backups,
 * beside the same operations on a per-file catalogue (one entry per WAL file,
 * as before format 2) of 100,000 files. Each operation runs in a fresh
 * process, a bundle built as a function's is, on a file:// repository:
 * CPU time and wall time of the call, the bytes of the catalogue object it
 * leaves (what an update writes), peak RSS of the process. Printed, never
 * asserted.
 */
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { CATALOGUE_KEY, Meta } from '../core/layout.ts';
import { FileStorage } from '../core/storage/file/storage.ts';
import { writeSmallObject } from '../core/storage/objects.ts';
import { catalogueBytes } from '../core/catalogue/store.ts';
import type { Catalogue, CatalogueBackup, CatalogueWalEntry, CatalogueWalRun } from '../core/catalogue/types.ts';
import { walSegmentName } from '../core/wal/name.ts';
import { formatLsn } from '../core/wal/lsn.ts';
import { RUN_SPAN_MS } from '../core/catalogue/runs.ts';
import { projectRoot } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { fixed, formatTable, median } from './lib/stats.ts';

export interface CatalogueBenchOptions {
  /** fresh processes per operation */
  rounds: number;
  log: (line: string) => void;
}

const SEG = 16 * 1024 * 1024;
const T0 = Date.parse('2026-11-01T00:00:00.000Z');
const DAYS = 30;
const FILES = DAYS * 86_400;
const BACKUPS = 1000;
const PARTS = 4;
const PENDING = 10;
const SYSID = '7300000000000000001';
/** The targets. */
const TARGETS = { bytes: 1e6, cpuMs: 100, statusMs: 1000, rss: 256e6 };

const iso = (ms: number) => new Date(ms).toISOString();
/** Segment n (from 1) was created n seconds after T0, generation 1e15 + n. */
const created = (n: number) => iso(T0 + n * 1000);
const generation = (n: number) => String(1e15 + n);

function backups(lastSeg: number, keysOnly = false): { backups: Record<string, CatalogueBackup>; parts: Catalogue['parts'] } {
  const out: Record<string, CatalogueBackup> = {};
  const parts: Catalogue['parts'] = {};
  const every = Math.floor(lastSeg / BACKUPS);
  for (let k = 0; k < BACKUPS; k++) {
    const start = 1 + k * every;
    const name = `base_${walSegmentName(1, BigInt(start), SEG)}`;
    const partKeys = Array.from({ length: PARTS }, (_, i) => `backups/${name}/part_${String(i).padStart(5, '0')}.tar`);
    out[name] = {
      name,
      generation: generation(start),
      state: 'valid',
      validated: created(start + 60),
      systemIdentifier: SYSID,
      pgVersionNum: 150010,
      timeline: 1,
      startLsn: formatLsn(BigInt(start) * BigInt(SEG) + 40n),
      stopLsn: formatLsn(BigInt(start + 1) * BigInt(SEG) + 312n),
      startWalSegment: walSegmentName(1, BigInt(start), SEG),
      stopWalSegment: walSegmentName(1, BigInt(start + 1), SEG),
      startTime: created(start),
      stopTime: created(start + 1),
      rawSize: 10 * 2 ** 30,
      storedSize: 3 * 2 ** 30,
      keys: [...partKeys, `backups/${name}/manifest.jsonl`, `backups/${name}/backup.json`],
    };
    if (!keysOnly)
      for (const key of partKeys)
        parts[key] = { key, generation: generation(start), size: 2 ** 30, created: created(start), state: 'valid', validated: created(start + 60) };
  }
  return { backups: out, parts };
}

/** 30 days at a segment a second, folded: runs of an hour, the last PENDING segments still pending. */
export function runsCatalogue(): Catalogue {
  const walRuns: CatalogueWalRun[] = [];
  const settled = FILES - PENDING;
  const perRun = RUN_SPAN_MS / 1000 + 1;
  for (let first = 1; first <= settled; first += perRun) {
    const last = Math.min(settled, first + perRun - 1);
    walRuns.push({
      timeline: 1,
      first: walSegmentName(1, BigInt(first), SEG),
      last: walSegmentName(1, BigInt(last), SEG),
      size: (last - first + 1) * 4_500_000,
      firstCreated: created(first),
      lastCreated: created(last),
      generation: generation(last),
      validated: created(last + 1),
    });
  }
  const wal: Record<string, CatalogueWalEntry> = {};
  for (let n = settled + 1; n <= FILES; n++) {
    const name = walSegmentName(1, BigInt(n), SEG);
    wal[name] = { name, generation: generation(n), size: 4_500_000, created: created(n), state: 'pending' };
  }
  const segmentTombstones = Array.from({ length: 7 }, (_, d) => ({
    timeline: 1,
    first: walSegmentName(1, BigInt(1 + d * 1000), SEG),
    last: walSegmentName(1, BigInt(1000 + d * 1000), SEG),
    generation: generation(1000 + d * 1000),
    deleted: created(FILES - (7 - d) * 86_400),
  }));
  return {
    format: 2,
    systemIdentifier: SYSID,
    walSegmentSize: SEG,
    updated: created(FILES),
    wal,
    walRuns,
    ...backups(FILES),
    tombstones: {},
    segmentTombstones,
    alerts: {},
    lastWalArrival: created(FILES),
  };
}

/** The same shape with one entry per WAL file (the layout before format 2), `files` of them. */
function perFileCatalogue(files: number, format: 1 | 2): Catalogue {
  const wal: Record<string, CatalogueWalEntry> = {};
  for (let n = 1; n <= files; n++) {
    const name = walSegmentName(1, BigInt(n), SEG);
    wal[name] = {
      name,
      generation: generation(n),
      size: 4_500_000,
      created: created(n),
      state: n > files - PENDING ? 'pending' : 'valid',
      ...(n > files - PENDING ? {} : { validated: created(n + 1) }),
    };
  }
  // Format 2 without a segment size folds nothing: today's per-file cost with today's code.
  const c = {
    format,
    systemIdentifier: SYSID,
    updated: created(files),
    wal,
    walRuns: [],
    ...backups(files),
    tombstones: {},
    segmentTombstones: [],
    alerts: {},
    lastWalArrival: created(files),
  } as unknown as Catalogue;
  if (format === 1) (c as { walSegmentSize?: number }).walSegmentSize = SEG;
  return c;
}

/** The events of a prune deleting the oldest backup's first part: about a settled backup, so the update reads them all. */
function pruneEvents(files: number): object[] {
  const name = `base_${walSegmentName(1, 1n, SEG)}`;
  return [{ type: 'deleted', key: `backups/${name}/part_00000.tar`, generation: generation(1), time: created(files + 2) }];
}

/** The events of one more segment validated: the oldest pending one found valid, the next one arriving. */
function nextEvents(files: number): object[] {
  const oldest = files - PENDING + 1;
  const next = files + 1;
  const key = (n: number) => `wal/${walSegmentName(1, BigInt(n), SEG)}`;
  return [
    { type: 'validated', key: key(oldest), generation: generation(oldest), ok: true, time: created(files + 2), systemIdentifier: SYSID },
    { type: 'finalized', key: key(next), generation: generation(next), size: 4_500_000, created: created(next) },
  ];
}

interface Measured {
  cpuMs: number;
  wallMs: number;
  bytes: number;
  written: boolean;
  hwmKiB: number;
}

/**
 * Bundle bench/lib/catalogue-one.ts into `dir` as a function's bundle is
 * built (native packages left to require()); returns the bundle's path.
 */
export async function bundleCatalogueOne(dir: string): Promise<string> {
  const bundle = path.join(dir, 'catalogue-one.mjs');
  await esbuild.build({
    absWorkingDir: projectRoot,
    entryPoints: [path.join(projectRoot, 'bench/lib/catalogue-one.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    nodePaths: [path.join(projectRoot, 'node_modules')],
    external: ['lzo', 'zstd-napi', 'fast-crc32c', 'sse4_crc32', 'lzo-wasm', '@google-cloud/storage', '@google-cloud/pubsub', 'pg-native'],
    banner: { js: "import { createRequire as __gcwalCreateRequire } from 'node:module';\nconst require = __gcwalCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  await chmod(bundle, 0o644);
  return bundle;
}

export async function runCatalogueBench(options: CatalogueBenchOptions, cleanups: Cleanups): Promise<string> {
  const dir = await makeTempDir('bench-catalogue');
  cleanups.add('the catalogue bench directory', dir.cleanup);
  const bundle = await bundleCatalogueOne(dir.path);
  let repos = 0;
  // As the pipeline leaves it (settled backups in their own gzip member, core/catalogue/encoding.ts), or for
  // the format-1 row as gcwal wrote it then (plain JSON); `bytes` is the JSON either way.
  const store = async (catalogue: Catalogue): Promise<{ url: string; bytes: number }> => {
    const url = pathToFileURL(path.join(dir.path, `repo-${++repos}`)).href;
    const storage = new FileStorage(url);
    await storage.createRoot();
    const text = JSON.stringify(catalogue);
    const old = (catalogue as { format: number }).format === 1;
    await writeSmallObject(storage, CATALOGUE_KEY, old ? text : catalogueBytes(catalogue), {
      metadata: { [Meta.codec]: old ? 'none' : 'gzip' },
      contentType: old ? 'application/json' : 'application/gzip',
    });
    return { url, bytes: Buffer.byteLength(text) };
  };
  const run = async (args: string[]): Promise<Measured> => {
    // NODE_PATH: the bundle's require() of native packages resolves from the project, as a function's from its own node_modules.
    const { stdout } = await promisify(execFile)(process.execPath, [bundle, ...args], {
      cwd: projectRoot,
      maxBuffer: 1 << 20,
      env: { ...process.env, NODE_PATH: path.join(projectRoot, 'node_modules') },
    });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as Measured;
  };

  const rows: string[][] = [];
  const measure = async (name: string, files: number, make: () => Catalogue, ops: ('update' | 'status' | 'first-update' | 'prune-update' | 'plan')[]) => {
    for (const op of ops) {
      const results: Measured[] = [];
      let before = 0;
      for (let round = 0; round < options.rounds; round++) {
        // A fresh copy each round: every update starts from the same catalogue.
        const { url, bytes } = await store(make());
        before = bytes;
        const now = created(files + 3);
        const events = op === 'prune-update' ? pruneEvents(files) : nextEvents(files);
        results.push(await run(op === 'status' || op === 'plan' ? [op, url, now] : ['update', url, now, JSON.stringify(events)]));
      }
      const med = (f: (m: Measured) => number) => median(results.map(f));
      const labels = {
        'first-update': 'first update (converts to runs)',
        update: 'update: one segment validated, one arrived',
        'prune-update': "update: a settled backup's part deleted (reads every backup)",
        status: 'gcwal status report',
        plan: "prune's plan (read, planRetention with retain-full 7)",
      };
      const label = labels[op];
      rows.push([
        name,
        label,
        (before / 1e6).toFixed(2),
        op === 'status' || op === 'plan' ? '–' : (med((m) => m.bytes) / 1e6).toFixed(3),
        fixed(med((m) => m.cpuMs)),
        fixed(med((m) => m.wallMs)),
        (med((m) => m.hwmKiB) / 1024).toFixed(0),
      ]);
      options.log(`${name}: ${label} done`);
    }
  };
  options.log('building the catalogues');
  await measure(`runs (format 2), ${FILES.toLocaleString('en')} WAL files, ${BACKUPS} backups × ${PARTS} parts`, FILES, runsCatalogue, [
    'update',
    'prune-update',
    'status',
  ]);
  await measure(`per file, 100,000 WAL files, ${BACKUPS} backups × ${PARTS} parts`, 100_000, () => perFileCatalogue(100_000, 2), ['update', 'status', 'plan']);
  await measure('format 1, 100,000 WAL files, converted on first use', 100_000, () => perFileCatalogue(100_000, 1), ['first-update']);

  return [
    `## catalogue (${options.rounds} fresh processes per row, medians)`,
    '',
    `Targets at ${FILES.toLocaleString('en')} WAL files and ${BACKUPS} backups: an update writes < ${TARGETS.bytes / 1e6} MB and takes < ${TARGETS.cpuMs} ms CPU, status < ${TARGETS.statusMs} ms, peak RSS < ${TARGETS.rss / 1e6} MB.`,
    '',
    formatTable(['catalogue', 'operation', 'object before (MB)', 'written (MB)', 'CPU (ms)', 'wall (ms)', 'peak RSS (MiB)'], rows),
  ].join('\n');
}
