/**
 * Running the measured programs as the postgres user (as PostgreSQL runs
 * archive_command), timing them, and measuring their peak memory.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { asPostgres, childEnv } from '../../local/testkit/users.ts';

/** How a measured program finished. */
export interface RunResult {
  code: number;
  /** wall milliseconds from spawn until the process exited */
  ms: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /**
   * The child's environment: this process's without PG* and GCWAL_*
   * variables, plus these. Build it once with {@link postgresEnv} when timing
   * many runs, so the look-up is not timed.
   */
  env: Readonly<Record<string, string>>;
  cwd?: string;
  /** SIGKILL after this long; default 30 minutes */
  timeoutMs?: number;
  /** called with the pid of the spawned process (runuser when root) */
  onSpawn?: (pid: number) => void;
}

/** The environment for a postgres-user child: PG and GCWAL_ variables stripped, HOME set, `extra` added. */
export function postgresEnv(extra: Readonly<Record<string, string | undefined>> = {}): Promise<Record<string, string>> {
  return childEnv(extra, true);
}

/**
 * Run `file args` as the postgres user (runuser when root) and resolve with
 * its exit code, output and wall time. A non-zero exit is data, not an error.
 */
export function runTimed(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const [cmd, argv] = asPostgres(file, args);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, argv, { env: options.env, cwd: options.cwd ?? '/tmp', stdio: ['ignore', 'pipe', 'pipe'] });
    let ms = 0;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30 * 60_000);
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${e.message}`, { cause: e }));
    });
    // The time is taken at exit; 'close' follows once the pipes are drained.
    child.on('exit', () => (ms = performance.now() - started));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ code: status ?? (signal ? 128 : 1), ms, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Like {@link runTimed}, but rejects with the command line and its stderr when the exit code is not 0. */
export async function runOk(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const result = await runTimed(file, args, options);
  if (result.code !== 0) {
    const output = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-15).join('\n');
    throw new Error(`${[file, ...args].join(' ')} exited with code ${result.code}\n${output}`);
  }
  return result;
}

/** A run with its memory figures. */
export interface MeasuredRun extends RunResult {
  /**
   * `/usr/bin/time -v` "Maximum resident set size": the high-water mark of the
   * largest single process it waited for (the measured program; runuser and
   * time themselves are outside), exact, in KiB.
   */
  maxRssKiB: number;
  /**
   * The largest sum of VmRSS over the measured program's process tree
   * (runuser and time excluded), sampled every 50 ms, in KiB: what matters
   * for tools that fork workers (pgBackRest process-max > 1).
   */
  treePeakKiB: number;
}

/**
 * Run `file args` as the postgres user under `/usr/bin/time -v -o timeFile`
 * (timeFile must be writable by postgres) while sampling the process tree's
 * resident memory. Rejects when the program fails.
 */
export async function runMeasured(file: string, args: readonly string[], timeFile: string, options: RunOptions): Promise<MeasuredRun> {
  let root: number | undefined;
  let treePeakKiB = 0;
  let sampling: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    if (root === undefined) return;
    const pid = root;
    sampling = sampling.then(async () => {
      treePeakKiB = Math.max(treePeakKiB, await treeRssKiB(pid));
    });
  }, 50);
  try {
    const result = await runOk('/usr/bin/time', ['-v', '-o', timeFile, file, ...args], { ...options, onSpawn: (pid) => (root = pid) });
    clearInterval(timer);
    await sampling;
    const report = await readFile(timeFile, 'utf8');
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(report);
    if (!m) throw new Error(`no maximum resident set size in ${timeFile}:\n${report}`);
    return { ...result, maxRssKiB: Number(m[1]), treePeakKiB };
  } finally {
    clearInterval(timer);
  }
}

/** Wrappers whose own memory is not the measured program's. */
const WRAPPERS = new Set(['runuser', 'time']);

/** Sum of VmRSS (KiB) of `root` and its descendants, leaving out the wrappers. */
async function treeRssKiB(root: number): Promise<number> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length > 1) parents.set(Number(entry), Number(fields[1]));
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  let sum = 0;
  for (const pid of tree) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const name = /^Name:\s+(\S+)/m.exec(status)?.[1];
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (name && rss && !WRAPPERS.has(name)) sum += Number(rss);
  }
  return sum;
}
