/**
 * Summaries of V8 `.cpuprofile` files (what `node --cpu-prof` writes): self
 * time per function and per kind of code, averaged over several runs.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execOk } from '../../local/testkit/exec.ts';
import { runOk } from './proc.ts';
import { fixed, formatTable } from './stats.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a sampled function comes from: `url` is empty for native code. */
export type CallFrame = ProfileNode['callFrame'];

/** Which kind of code a profile node is, for the category totals. */
function category(frame: CallFrame): string {
  if (frame.functionName.startsWith('(')) return frame.functionName; // (program), (garbage collection), (idle), (root)
  if (frame.url.endsWith('gcwal.mjs')) return 'gcwal bundle JavaScript';
  if (frame.url.startsWith('node:')) return 'Node.js internal JavaScript';
  if (frame.url === '') return 'native functions (addons, V8 builtins)';
  return `other JavaScript (${path.basename(frame.url)})`;
}

/**
 * Like the default categories, but JavaScript from node_modules is put
 * under its package (`package google-auth-library`), and every `.mjs` file
 * outside node_modules counts as the gcwal bundle (the entry and its
 * chunks): for profiles where most of the code is library code.
 */
export function packageCategory(frame: CallFrame): string {
  const inModules = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*\/node_modules\/)/.exec(frame.url);
  if (!frame.functionName.startsWith('(') && inModules) return `package ${inModules[1]}`;
  if (!frame.functionName.startsWith('(') && frame.url.endsWith('.mjs')) return 'gcwal bundle JavaScript';
  return category(frame);
}

function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  return `${name} ${path.basename(frame.url)}:${frame.lineNumber + 1}`;
}

/**
 * Average self time per run (ms) by category and the top `top` functions,
 * as two Markdown tables; `classify` names the kind of each function
 * (default: Node internals, the gcwal bundle, native, other files by name).
 * `wallMs`, the median wall time of the profiled
 * runs, gives the time outside the profile (bootstrap before the profiler
 * starts, writing the profile at exit).
 */
export async function summariseProfiles(
  files: readonly string[],
  wallMs: number,
  top = 15,
  classify: (frame: CallFrame) => string = category,
): Promise<string> {
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let profiled = 0;
  for (const file of files) {
    const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    profiled += (profile.endTime - profile.startTime) / 1000;
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = nodes.get(profile.samples[i])!.callFrame;
      // timeDeltas[i] is the time since the previous sample: it belongs to sample i.
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      byCategory.set(classify(frame), (byCategory.get(classify(frame)) ?? 0) + ms);
      byFunction.set(label(frame), (byFunction.get(label(frame)) ?? 0) + ms);
    }
  }
  const runs = Math.max(1, files.length);
  const perRun = (ms: number) => fixed(ms / runs, 1);
  // Kinds under 0.5 ms per run are folded into one row, so a profile of library code does not list 30 packages.
  const sorted = [...byCategory].sort((a, b) => b[1] - a[1]);
  const small = sorted.filter(([, ms]) => ms / runs < 0.5);
  const categories = sorted.filter(([, ms]) => ms / runs >= 0.5).map(([name, ms]) => [name, perRun(ms)]);
  if (small.length > 0) categories.push([`${small.length} more kinds under 0.5 ms each`, perRun(small.reduce((n, [, ms]) => n + ms, 0))]);
  categories.push(['= profiled time', perRun(profiled)]);
  categories.push(['outside the profile (median wall − profiled)', fixed(wallMs - profiled / runs, 1)]);
  const functions = [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => [name, perRun(ms)]);
  return [formatTable(['self time by kind', 'ms/run'], categories), '', formatTable([`top ${top} functions by self time`, 'ms/run'], functions)].join('\n');
}

/**
 * Run the installed bundle (`<installDir>/gcwal.mjs`) with `args` as the
 * postgres user under `node --cpu-prof` (the wrapper script cannot pass it:
 * Node refuses --cpu-prof in NODE_OPTIONS), and summarise the profile.
 * `dir` receives the profile; it is created and handed to postgres.
 */
export async function profileGcwal(
  installDir: string,
  args: readonly string[],
  options: { env: Record<string, string>; cwd: string; dir: string },
): Promise<{ ms: number; summary: string }> {
  await mkdir(options.dir, { recursive: true });
  await execOk('chown', ['postgres:postgres', options.dir]);
  const run = await runOk(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${options.dir}`, path.join(installDir, 'gcwal.mjs'), ...args], {
    env: options.env,
    cwd: options.cwd,
  });
  const files = (await readdir(options.dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(options.dir, f));
  return { ms: run.ms, summary: await summariseProfiles(files, run.ms, 20) };
}
