/**
 * Long-running helper processes of the local stack (gcloud's Pub/Sub
 * emulator, the functions-framework) in a process group of their own, so that
 * stopping one stops everything it started: gcloud is a Python launcher whose
 * Java child would otherwise outlive it and keep its port.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** How to start a child. */
export interface GroupChildOptions {
  /** shown in error messages, e.g. `the pub/sub emulator` */
  what: string;
  command: string;
  args: readonly string[];
  /** the child's complete environment; nothing is inherited */
  env: Readonly<Record<string, string>>;
  cwd?: string;
}

/** How a child ended: an exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running process group led by the spawned child. */
export interface GroupChild {
  /** the leader's pid, which is also the group id */
  readonly pid: number;
  /** what it wrote to stdout and stderr so far, interleaved as read; the last 1 MiB */
  logs(): string;
  /** the last `lines` lines of logs() */
  tail(lines?: number): string;
  /** the leader's exit status once it has exited, else undefined */
  exitStatus(): ExitStatus | undefined;
  /** resolves when the leader has exited and its output is read */
  readonly exited: Promise<ExitStatus>;
  /**
   * Stop the whole group: SIGTERM, SIGKILL after `graceMs` (default 5 s) to
   * whatever still lives, and resolve once no live process of the group is
   * left. Idempotent. Rejects only if processes survive SIGKILL for 10 s.
   */
  stop(graceMs?: number): Promise<void>;
}

const LOG_LIMIT = 1024 * 1024;
const POLL_MS = 50;

/**
 * Spawn `command` as the leader of a new process group (setsid). Resolves
 * once it runs; rejects when it cannot be started at all (e.g. not on PATH).
 * Until stop() is called, the group is also killed if this Node process
 * exits, so an aborted run does not leave emulators behind.
 */
export async function spawnGroup(options: GroupChildOptions): Promise<GroupChild> {
  const child = spawn(options.command, options.args, {
    env: options.env as NodeJS.ProcessEnv,
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > LOG_LIMIT) output = output.slice(-LOG_LIMIT);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);

  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot start ${options.what} (${options.command}): ${err.message}`, { cause: err })));
  });
  const pid = child.pid!;
  let status: ExitStatus | undefined;
  // 'close', not 'exit': all output has been read by then.
  const exited = new Promise<ExitStatus>((resolve) => child.once('close', (code, signal) => resolve((status = { code, signal }))));
  const reap = () => signalGroup(pid, 'SIGKILL');
  process.once('exit', reap);

  let stopping: Promise<void> | undefined;
  return {
    pid,
    logs: () => output,
    tail: (lines = 20) => tailOf(output, lines),
    exitStatus: () => status,
    exited,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        process.off('exit', reap);
        signalGroup(pid, 'SIGTERM');
        if (!(await groupGone(pid, graceMs))) {
          signalGroup(pid, 'SIGKILL');
          if (!(await groupGone(pid, 10_000))) throw new Error(`${options.what} (process group ${pid}) survived SIGKILL`);
        }
        await exited;
      })();
      return stopping;
    },
  };
}

/** The last `lines` non-empty lines of `text`. */
export function tailOf(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

/** Poll until no live process of the group remains; false on timeout. */
async function groupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await liveGroupMembers(pgid)).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await delay(POLL_MS);
  }
}

/**
 * Pids of the group's processes that still run. Zombies do not count: an
 * orphan reparented to init stays a zombie until init reaps it, but it holds
 * no port or memory. Where there is no /proc, any process of the group counts.
 */
export async function liveGroupMembers(pgid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const live: number[] = [];
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (entry) => {
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') live.push(Number(entry));
      }),
  );
  return live;
}

/** What {@link waitUntilReady} watches. */
export interface ReadinessOptions {
  child: GroupChild;
  /** true once the server answers as expected; a throw counts as "not yet" */
  probe: () => Promise<boolean>;
  timeoutMs: number;
  /** an error that aborts the wait at once (e.g. a port already taken), checked on every round */
  fatal?: () => Error | undefined;
}

/**
 * Poll `probe` every 100 ms until it returns true. Rejects at once, with the
 * tail of the child's output, if the child exits or `fatal` reports an error,
 * and after `timeoutMs` otherwise. The caller stops the child on rejection.
 */
export async function waitUntilReady(what: string, options: ReadinessOptions): Promise<void> {
  const { child } = options;
  const started = Date.now();
  for (;;) {
    const fatal = options.fatal?.();
    if (fatal) throw fatal;
    const status = child.exitStatus();
    if (status) {
      const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
      throw new Error(`${what} ${how} before it was ready; its last output:\n${child.tail()}`);
    }
    if (await options.probe().catch(() => false)) return;
    if (Date.now() - started > options.timeoutMs) {
      throw new Error(
        `${what} was not ready after ${+(options.timeoutMs / 1000).toFixed(1)} s (a loaded machine may need a longer timeout); its last output:\n${child.tail()}`,
      );
    }
    await Promise.race([delay(100), child.exited]);
  }
}
