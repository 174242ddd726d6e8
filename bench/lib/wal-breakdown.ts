/**
 * Where `gcwal wal-push` spends its time: whole-process figures for each
 * layer (runuser + sh, Node start-up, bundle load, native module load, the
 * command itself), in-process costs of each step on a real segment, and a
 * V8 CPU profile of real pushes summarised by self time.
 */
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { crc32 as zlibCrc32 } from 'node:zlib';
import * as esbuild from 'esbuild';
import { projectRoot } from '../../local/testkit/install.ts';
import { execOk } from '../../local/testkit/exec.ts';
import type { InstalledAgent } from '../../local/testkit/install.ts';
import { crc32c } from '../../core/checksum/crc32c.ts';
import { adler32 } from '../../core/codec/lzo/adler32.ts';
import { encodeBlock, Flag } from '../../core/codec/lzo/format.ts';
import { getCodec } from '../../core/codec/index.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { pushWalFile } from '../../agent/wal/push.ts';
import { postgresEnv, runTimed } from './proc.ts';
import { shellQuote } from './shell.ts';
import { fixed, formatTable, median } from './stats.ts';
import { summariseProfiles } from './cpuprofile.ts';
import { createRepoForSegment } from './repo.ts';

export interface BreakdownOptions {
  agent: InstalledAgent;
  /** real segments; each push goes into a fresh repository, so any may be reused */
  segments: readonly string[];
  /** a directory the postgres user can write */
  work: string;
  log: (line: string) => void;
}

/** The reference script: minimal durable push in plain Node. */
const FLOOR_SCRIPT = fileURLToPath(new URL('./floor-push.mjs', import.meta.url));

/** Runs per process-level figure. */
const RUNS = 15;

/** Measure and return the breakdown as Markdown. */
export async function walBreakdown(options: BreakdownOptions): Promise<string> {
  const dir = path.join(options.work, 'breakdown');
  await mkdir(dir, { recursive: true });
  await execOk('chown', ['postgres:postgres', dir]);
  try {
    const processRows = await processFigures(options, dir);
    const stepRows = await inProcessFigures(options.segments, dir);
    const profile = await profileRuns(options, dir);
    return [
      '### Where gcwal wal-push (lzo) spends its time',
      '',
      `Whole processes, as postgres via \`sh -c\`, median of ${RUNS} runs (the "command" column is the time gcwal itself logs with GCWAL_VERBOSE for the wal-push command, from opening the repository to the durable object):`,
      '',
      formatTable(['process', 'median ms', 'command ms'], processRows),
      '',
      'Each step in a warm process (JIT-compiled; a fresh process runs the first megabytes of JavaScript loops slower), on a real 16 MiB segment, median of 7:',
      '',
      formatTable(['step', 'median ms'], stepRows),
      '',
      profile,
    ].join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function medianOf(runs: number, once: (i: number) => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once(i));
  return median(times);
}

/** Time `sh -c command` as postgres; rejects when it fails. */
async function shTimed(command: string, env: Record<string, string>): Promise<{ ms: number; stderr: string; stdout: string }> {
  const result = await runTimed('sh', ['-c', command], { env });
  if (result.code !== 0) throw new Error(`${command} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return result;
}

async function processFigures(options: BreakdownOptions, dir: string): Promise<string[][]> {
  const { agent, segments } = options;
  const base = await postgresEnv();
  const gcwal = shellQuote(agent.command);
  const rows: string[][] = [];
  const simple = async (label: string, command: string) => {
    await shTimed(command, base);
    rows.push([label, fixed(await medianOf(RUNS, async () => (await shTimed(command, base)).ms)), '-']);
  };
  await simple('true (runuser + sh)', 'true');
  await simple('node -e 0', `${shellQuote(process.execPath)} -e 0`);
  await simple('gcwal --version (Node + bundle load, no command)', `${gcwal} --version`);
  const walOnly = await buildWalPushOnlyBundle(agent.dir);
  await simple('node + a bundle of only the modules wal-push imports (loaded, nothing run)', `${shellQuote(process.execPath)} ${shellQuote(walOnly)}`);

  // Native addons, loaded the way the bundle loads them (require from the install).
  const probe =
    `const r=require('node:module').createRequire(${JSON.stringify(path.join(agent.dir, 'gcwal.mjs'))});` +
    "const t={};for(const n of ['lzo','fast-crc32c','zstd-napi']){const s=performance.now();r(n);t[n]=performance.now()-s;}" +
    'process.stdout.write(JSON.stringify(t))';
  const loads: Record<string, number[]> = {};
  for (let i = 0; i < RUNS; i++) {
    const { stdout } = await shTimed(`${shellQuote(process.execPath)} -e ${shellQuote(probe)}`, base);
    for (const [name, ms] of Object.entries(JSON.parse(stdout) as Record<string, number>)) (loads[name] ??= []).push(ms);
  }
  for (const [name, times] of Object.entries(loads)) rows.push([`require('${name}') in a fresh process (in-process time)`, fixed(median(times), 2), '-']);

  for (const codec of ['lzo', 'zstd', 'none']) {
    const totals: number[] = [];
    const commands: number[] = [];
    for (let i = 0; i <= RUNS; i++) {
      // One repository per codec, created as repo-create would; every push reads its gcwal.json.
      const repo = path.join(dir, `verbose-${codec}`);
      if (i === 0) await createRepoForSegment(`file://${repo}`, segments[0]);
      const env = { ...base, GCWAL_REPO: `file://${repo}`, GCWAL_COMPRESSION: codec, GCWAL_VERBOSE: 'true' };
      const result = await shTimed(`${gcwal} wal-push ${shellQuote(segments[i % segments.length])}`, env);
      if (i === 0) continue; // warm-up push
      totals.push(result.ms);
      commands.push(Number(/ ms=(\d+)/.exec(result.stderr)?.[1] ?? Number.NaN));
      if (i % segments.length === segments.length - 1) await rm(path.join(repo, 'wal'), { recursive: true, force: true });
    }
    rows.push([`gcwal wal-push, GCWAL_COMPRESSION=${codec}, GCWAL_VERBOSE=true`, fixed(median(totals)), fixed(median(commands))]);
  }

  const floor = `${shellQuote(process.execPath)} ${shellQuote(FLOOR_SCRIPT)} ${shellQuote(agent.dir)}`;
  const floorTimes: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const ms = (await shTimed(`${floor} ${shellQuote(segments[i % segments.length])} ${shellQuote(path.join(dir, `floor-${i}`))}`, base)).ms;
    if (i > 0) floorTimes.push(ms);
  }
  rows.push(['floor-push.mjs: minimal Node push, same libraries and guarantees (see bench/lib/floor-push.mjs)', fixed(median(floorTimes)), '-']);
  return rows;
}

/** Per-step costs in this (warm) process on the first segment. */
async function inProcessFigures(segments: readonly string[], dir: string): Promise<string[][]> {
  const data = await readFile(segments[0]);
  const require = createRequire(import.meta.url);
  const lzo = require('lzo') as { compress(b: Buffer): Buffer };
  const block = 256 * 1024;
  const time = async (fn: () => unknown) => {
    await fn();
    return medianOf(7, async () => {
      const start = performance.now();
      await fn();
      return performance.now() - start;
    });
  };
  const sink = (into?: Buffer[]) => new Writable({ write: (chunk: Buffer, _e, done) => (into?.push(chunk), done()) });
  const compress = (codec: 'lzo' | 'zstd', into?: Buffer[]) => pipeline(Readable.from(chunks(data, 1024 * 1024)), getCodec(codec).compressor(), sink(into));
  // The object as the lzo codec emits it, chunk by chunk, as wal-push hands it to storage.
  const packed: Buffer[] = [];
  await compress('lzo', packed);
  const packedBytes = packed.reduce((n, b) => n + b.length, 0);
  const size = `${(packedBytes / 1024 / 1024).toFixed(1)} MiB`;
  const storage = new FileStorage(`file://${path.join(dir, 'inprocess')}`);
  await storage.createRoot();
  const blocks: [Buffer, Buffer][] = [];
  for (let o = 0; o < data.length; o += block) blocks.push([data.subarray(o, o + block), lzo.compress(data.subarray(o, o + block))]);
  const frame = (flags: number) => blocks.map(([raw, packed]) => encodeBlock(flags, raw, packed.length < raw.length ? packed : undefined));
  let n = 0;
  const next = () => path.join(dir, `file-${n++}`);
  return [
    [
      'stream the 16 MiB file in 1 MiB chunks (createReadStream; wal-push reads it twice)',
      fixed(await time(() => collect(createReadStream(segments[0], { highWaterMark: 1024 * 1024 }))), 2),
    ],
    ['read it into one 16 MiB buffer (1 MiB read() calls)', fixed(await time(() => readInto(segments[0], 1024 * 1024)), 2)],
    ['crc32c over 16 MiB (fast-crc32c, SSE4.2)', fixed(await time(() => crc32c(data)), 2)],
    ['adler32 over 16 MiB (JavaScript, lzop block checksum)', fixed(await time(() => adler32(data)), 2)],
    ['zlib.crc32 over 16 MiB (native; lzop can carry CRC-32 instead of Adler-32)', fixed(await time(() => zlibCrc32(data)), 2)],
    [
      'LZO1X-1, 64 blocks of 256 KiB (lzo package: zero-filled output buffer per block)',
      fixed(
        await time(() => {
          for (let o = 0; o < data.length; o += block) lzo.compress(data.subarray(o, o + block));
        }),
        2,
      ),
    ],
    [
      'lzop block framing of those 64 blocks, Adler-32 of data and compressed data (the flags gcwal writes)',
      fixed(await time(() => frame(Flag.adler32D | Flag.adler32C)), 2),
    ],
    ['… the same framing with CRC-32 flags instead (zlib.crc32; encodeBlock supports both)', fixed(await time(() => frame(Flag.crc32D | Flag.crc32C)), 2)],
    ['lzo codec stream (LZO1X-1 + lzop framing with 2 Adler-32s)', fixed(await time(() => compress('lzo')), 2)],
    ['zstd codec stream (level 1)', fixed(await time(() => compress('zstd')), 2)],
    [`write the ${size} object to a new file as the codec emits it, no fsync`, fixed(await time(() => writeChunks(next(), packed, false)), 2)],
    [`… the same plus fsync of it, of a small file and of 2 directories (FileStorage.write's syncs)`, fixed(await time(() => durableWrite(next(), packed)), 2)],
    [
      `FileStorage.write of the ${size} object as the codec emits it (+ crc32c, mkdirs, link, rename, temp clean-up)`,
      fixed(await time(() => storage.write(`wal/x${n++}`, Readable.from(packed))), 2),
    ],
    [
      `(for reference) the ${size} object in one write() call: this VM is slow on writes over 1 MiB`,
      fixed(await time(() => writeChunks(next(), [Buffer.concat(packed)], false)), 2),
    ],
    ['pushWalFile() (lzo) in this warm process: the command without start-up, JIT warm-up or module loading', fixed(await warmPush(segments, dir), 2)],
  ];
}

/** Read a file into one buffer of its size with `chunk`-sized read() calls. */
async function readInto(file: string, chunk: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.allocUnsafe(size);
    for (let offset = 0; offset < size; offset += chunk) await handle.read(buf, offset, Math.min(chunk, size - offset), offset);
    return buf;
  } finally {
    await handle.close();
  }
}

async function writeChunks(file: string, parts: readonly Buffer[], sync: boolean): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    for (const part of parts) await handle.write(part);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Median time of pushWalFile for a segment into a repository that already holds one (so gcwal.json exists). */
async function warmPush(segments: readonly string[], dir: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 8; i++) {
    const storage = new FileStorage(`file://${path.join(dir, `warm-${i}`)}`);
    await createRepoForSegment(storage.url, segments[0]);
    await pushWalFile(storage, segments[1], { codec: 'lzo', level: undefined });
    const start = performance.now();
    await pushWalFile(storage, segments[0], { codec: 'lzo', level: undefined });
    if (i > 0) times.push(performance.now() - start);
  }
  return median(times);
}

/** Write `parts` and fsync them, a small sidecar and two directories, as FileStorage.write does. */
async function durableWrite(file: string, parts: readonly Buffer[]): Promise<void> {
  const syncDir = async (p: string) => {
    const handle = await open(p, 'r');
    await handle.sync();
    await handle.close();
  };
  await writeChunks(file, parts, true);
  await writeChunks(`${file}.json`, [Buffer.from('{}')], true);
  await syncDir(path.dirname(file));
  await syncDir(path.dirname(file));
}

/**
 * Bundle just the modules `gcwal wal-push` imports (command, config, logger,
 * storage opener) with the options scripts/build.mjs uses, into the install
 * directory so the native packages resolve: its load time against the full
 * bundle's shows what a separate wal-push entry point would save.
 */
async function buildWalPushOnlyBundle(installDir: string): Promise<string> {
  const outfile = path.join(installDir, 'wal-push-only.mjs');
  const imports = ['agent/commands/wal-push.ts', 'agent/config.ts', 'agent/log.ts', 'core/storage/open.ts', 'core/errors.ts'];
  await esbuild.build({
    stdin: {
      contents: imports.map((f) => `import ${JSON.stringify(path.join(projectRoot, f))};`).join('\n'),
      resolveDir: projectRoot,
      loader: 'ts',
      sourcefile: 'wal-push-only.ts',
    },
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['lzo', 'zstd-napi', 'fast-crc32c', 'sse4_crc32', 'lzo-wasm', 'pg-native'],
    banner: { js: "import { createRequire as __cr } from 'node:module';\nconst require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  await chmod(outfile, 0o644);
  return outfile;
}

function* chunks(data: Buffer, size: number): Generator<Buffer> {
  for (let o = 0; o < data.length; o += size) yield data.subarray(o, o + size);
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of stream) out.push(chunk as Buffer);
  return out;
}

/** CPU-profile real pushes and summarise their self time. */
async function profileRuns(options: BreakdownOptions, dir: string): Promise<string> {
  const profiles = path.join(dir, 'profiles');
  await mkdir(profiles, { recursive: true });
  await execOk('chown', ['postgres:postgres', profiles]);
  const env = await postgresEnv({ GCWAL_REPO: `file://${path.join(dir, 'profiled')}` });
  await createRepoForSegment(env.GCWAL_REPO!, options.segments[0]);
  // --cpu-prof is not allowed in NODE_OPTIONS: run the bundle with node directly, as the wrapper does.
  const node = `${shellQuote(process.execPath)} --cpu-prof --cpu-prof-dir=${shellQuote(profiles)} ${shellQuote(path.join(options.agent.dir, 'gcwal.mjs'))}`;
  const runs = Math.min(5, options.segments.length);
  const walls: number[] = [];
  for (let i = 0; i < runs; i++) walls.push((await shTimed(`${node} wal-push ${shellQuote(options.segments[i])}`, env)).ms);
  const files = (await readdir(profiles)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profiles, f));
  const summary = await summariseProfiles(files, median(walls));
  return [
    `V8 CPU profile of ${files.length} wal-push (lzo) runs (\`--cpu-prof\`; profiling itself slows them: ${fixed(median(walls))} ms median wall). The profile starts after Node's bootstrap; "outside the profile" is bootstrap, profiler start and exit. Mean per run:`,
    '',
    summary,
  ].join('\n');
}
