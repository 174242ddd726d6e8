/**
 * Where `gcwal wal-push` to a gs:// repository spends its time: whole
 * processes for each layer (runuser + sh, Node, the bundle, the Cloud Storage
 * library, the command with its own GCWAL_VERBOSE `ms=`), the same steps
 * one by one in a fresh process (bench/lib/gcs-steps.mjs), and a V8 CPU
 * profile of real pushes with self time per npm package.
 */
import { chmod, copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import type { LocalStack } from '../../local/stack.ts';
import { execOk } from '../../local/testkit/exec.ts';
import type { InstalledAgent } from '../../local/testkit/install.ts';
import { packageCategory, summariseProfiles } from './cpuprofile.ts';
import { runTimed } from './proc.ts';
import { shellQuote } from './shell.ts';
import { fixed, formatTable, median } from './stats.ts';
import { createRepoForSegment } from './repo.ts';

export interface GcsBreakdownOptions {
  agent: InstalledAgent;
  stack: LocalStack;
  /** real segments and one more for warming up each fresh repository */
  segments: readonly string[];
  warmup: string;
  /** environments of gcwal over each scheme (postgres env + stack env), GCWAL_REPO is replaced */
  env: { http: Record<string, string>; https: Record<string, string> };
  /** a gs:// repository that already holds gcwal.json, for the step script */
  existingRepo: string;
  /** a directory the postgres user can write */
  work: string;
  log: (line: string) => void;
}

/** Runs per whole-process figure. */
const RUNS = 11;

/** The step-timing script; it is copied into the install directory so its imports resolve as the bundle's do. */
const STEPS_SCRIPT = fileURLToPath(new URL('./gcs-steps.mjs', import.meta.url));

/** Measure and return the breakdown as Markdown. */
export async function gcsBreakdown(options: GcsBreakdownOptions): Promise<string> {
  const dir = path.join(options.work, 'gcs-breakdown');
  await mkdir(dir, { recursive: true });
  await execOk('chown', ['postgres:postgres', dir]);
  try {
    const steps = path.join(options.agent.dir, 'gcs-steps.mjs');
    await copyFile(STEPS_SCRIPT, steps);
    const loaders = await writeLoaders(options.agent.dir);

    options.log('gcs: whole-process figures');
    const processRows = await processFigures(options, loaders);
    options.log('gcs: steps one by one');
    const stepRows = await stepFigures(options, steps);
    options.log('gcs: CPU profile of gcwal wal-push (lzo, https)');
    const profile = await profileRuns(options, dir);
    return [
      '### Where gcwal wal-push to gs:// spends its time',
      '',
      `Whole processes, as postgres via \`sh -c\`, median of ${RUNS} runs. Each timed push goes into a repository that already holds gcwal.json (an untimed push created it), so it is a first push of its segment with the usual requests. "command ms" is the \`ms=\` gcwal logs with GCWAL_VERBOSE: from the start of the wal-push command (before the repository is opened) to the durable object.`,
      '',
      formatTable(['process', 'median ms', 'command ms'], processRows),
      '',
      `The same steps one after another in a fresh process (\`bench/lib/gcs-steps.mjs\`: @google-cloud/storage with gcwal's client options, fetch for the GET as GcsStorage.read does), median of ${RUNS} runs per scheme:`,
      '',
      formatTable(['step', 'https ms', 'http ms'], stepRows),
      '',
      profile,
    ].join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `sh -c command` as postgres; rejects with its output when it fails. */
async function sh(command: string, env: Record<string, string>): Promise<{ ms: number; stdout: string; stderr: string }> {
  const result = await runTimed('sh', ['-c', command], { env });
  if (result.code !== 0) throw new Error(`${command} exited with code ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  return result;
}

/** Median over RUNS of `once(i)` (milliseconds). */
async function medianOf(once: (i: number) => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await once(i));
  return median(times);
}

/** A gs:// repository of its own (`name`, unique) under the bench prefix, created as repo-create would, and an untimed push. */
async function freshRepo(options: GcsBreakdownOptions, env: Record<string, string>, name: string): Promise<Record<string, string>> {
  const repoEnv = { ...env, GCWAL_REPO: `gs://${options.stack.bucket}/bench/breakdown/${name}` };
  await createRepoForSegment(repoEnv.GCWAL_REPO, options.warmup, options.stack.env);
  await sh(`${shellQuote(options.agent.command)} wal-push ${shellQuote(options.warmup)}`, repoEnv);
  return repoEnv;
}

/** Scripts that only load the Cloud Storage library in one way or another, in the install directory. */
interface Loaders {
  /** `import('@google-cloud/storage')`: its ESM build, as the bundle loads it */
  esm: string;
  /** `require('@google-cloud/storage')`: its CommonJS build */
  cjs: string;
  /** google-auth-library alone (the copy the storage client depends on) */
  auth: string;
  /** the ESM build bundled into one file with esbuild (the options scripts/build.mjs uses) */
  bundle: string;
  bundleBytes: number;
}

async function writeLoaders(dir: string): Promise<Loaders> {
  const loaders: Loaders = {
    esm: path.join(dir, 'load-storage.mjs'),
    cjs: path.join(dir, 'load-storage.cjs'),
    auth: path.join(dir, 'load-auth.cjs'),
    bundle: path.join(dir, 'storage-bundle.mjs'),
    bundleBytes: 0,
  };
  await writeFile(loaders.esm, "await import('@google-cloud/storage');\n", { mode: 0o644 });
  await writeFile(loaders.cjs, "require('@google-cloud/storage');\n", { mode: 0o644 });
  await writeFile(loaders.auth, "require('node:module').createRequire(require.resolve('@google-cloud/storage'))('google-auth-library');\n", { mode: 0o644 });
  await esbuild.build({
    stdin: { contents: "export * from '@google-cloud/storage';", resolveDir: dir, loader: 'js', sourcefile: 'storage-entry.mjs' },
    outfile: loaders.bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    banner: { js: "import { createRequire as __cr } from 'node:module';\nconst require = __cr(import.meta.url);" },
    logLevel: 'error',
  });
  await chmod(loaders.bundle, 0o644);
  loaders.bundleBytes = (await stat(loaders.bundle)).size;
  return loaders;
}

async function processFigures(options: GcsBreakdownOptions, loaders: Loaders): Promise<string[][]> {
  const { agent, segments } = options;
  const node = shellQuote(process.execPath);
  const env = options.env.https;
  const rows: string[][] = [];
  rows.push(['true (runuser + sh)', fixed(await medianOf(async () => (await sh('true', env)).ms)), '-']);
  rows.push(['node -e 0', fixed(await medianOf(async () => (await sh(`${node} -e 0`, env)).ms)), '-']);
  rows.push(['gcwal --version (Node + the bundle)', fixed(await medianOf(async () => (await sh(`${shellQuote(agent.command)} --version`, env)).ms)), '-']);
  const load = async (label: string, file: string) =>
    rows.push([label, fixed(await medianOf(async () => (await sh(`${node} ${shellQuote(file)}`, env)).ms)), '-']);
  await load("node + import('@google-cloud/storage') (its ESM build, as gcwal loads it)", loaders.esm);
  await load("node + require('@google-cloud/storage') (its CommonJS build)", loaders.cjs);
  await load('node + google-auth-library alone', loaders.auth);
  await load(`node + @google-cloud/storage bundled into one ${(loaders.bundleBytes / 1024 / 1024).toFixed(1)} MiB file by esbuild`, loaders.bundle);
  for (const scheme of ['https', 'http'] as const) {
    const totals: number[] = [];
    const commands: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const repoEnv = await freshRepo(options, { ...options.env[scheme], GCWAL_VERBOSE: 'true' }, `verbose-${scheme}-${i}`);
      const result = await sh(`${shellQuote(agent.command)} wal-push ${shellQuote(segments[i % segments.length])}`, repoEnv);
      totals.push(result.ms);
      commands.push(Number(/ ms=(\d+)/.exec(result.stderr)?.[1] ?? Number.NaN));
    }
    rows.push([`gcwal wal-push (lzo, ${scheme}), GCWAL_VERBOSE=true`, fixed(median(totals)), fixed(median(commands))]);
  }
  return rows;
}

/** Medians of each step of gcs-steps.mjs, per scheme, and of its wall time. */
async function stepFigures(options: GcsBreakdownOptions, script: string): Promise<string[][]> {
  const node = shellQuote(process.execPath);
  const byScheme = { https: new Map<string, number[]>(), http: new Map<string, number[]>() };
  for (const scheme of ['https', 'http'] as const) {
    const env = options.env[scheme];
    const endpoint = env.GCWAL_GCS_ENDPOINT;
    for (let i = 0; i < RUNS; i++) {
      const segment = options.segments[i % options.segments.length];
      const key = `steps-${scheme}-${i}/${path.basename(segment)}`;
      const result = await sh(`${node} ${shellQuote(script)} ${[segment, endpoint, options.existingRepo, key].map(shellQuote).join(' ')}`, env);
      const steps = JSON.parse(result.stdout) as Record<string, number>;
      const sum = Object.values(steps).reduce((a, b) => a + b, 0);
      const record = (name: string, ms: number) => byScheme[scheme].set(name, [...(byScheme[scheme].get(name) ?? []), ms]);
      for (const [name, ms] of Object.entries(steps)) record(name, ms);
      record('= the steps together', sum);
      record('exit and runuser + sh (wall − steps)', result.ms - sum);
      record('= wall time of the process', result.ms);
    }
  }
  return [...byScheme.https.keys()].map((name) => [name, fixed(median(byScheme.https.get(name) ?? [])), fixed(median(byScheme.http.get(name) ?? []))]);
}

/** CPU-profile real pushes (lzo, https) and summarise their self time per package. */
async function profileRuns(options: GcsBreakdownOptions, dir: string): Promise<string> {
  const profiles = path.join(dir, 'profiles');
  await mkdir(profiles, { recursive: true });
  await execOk('chown', ['postgres:postgres', profiles]);
  // --cpu-prof is not allowed in NODE_OPTIONS: run the bundle with node directly, as the wrapper does.
  const node = `${shellQuote(process.execPath)} --cpu-prof --cpu-prof-dir=${shellQuote(profiles)} ${shellQuote(path.join(options.agent.dir, 'gcwal.mjs'))}`;
  const runs = 5;
  const walls: number[] = [];
  for (let i = 0; i < runs; i++) {
    // The untimed push that creates gcwal.json runs through the wrapper, unprofiled.
    const repoEnv = await freshRepo(options, options.env.https, `profiled-${i}`);
    walls.push((await sh(`${node} wal-push ${shellQuote(options.segments[i % options.segments.length])}`, repoEnv)).ms);
  }
  const files = (await readdir(profiles)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profiles, f));
  const summary = await summariseProfiles(files, median(walls), 20, packageCategory);
  return [
    `V8 CPU profile of ${files.length} wal-push (lzo, https) runs (\`--cpu-prof\`; profiling itself slows them: ${fixed(median(walls))} ms median wall). The profile starts after Node's bootstrap; "(idle)" is waiting, here mostly for the emulator and the metadata server (which run in the benchmark's process on the same 2 cores); "outside the profile" is bootstrap, profiler start and exit. Mean per run:`,
    '',
    summary,
  ].join('\n');
}
