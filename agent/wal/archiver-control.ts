/**
 * How wal-push in asynchronous mode (GCWAL_ARCHIVE_ASYNC) and the background
 * archiver (archiver.ts) find each other through `pg_wal/.gcwal-archiver/`:
 * the archiver's pid file (one per pg_wal; a dead one is replaced), the
 * `failing` file it keeps while its last push failed, its status and its
 * log; starting it as a detached process; and the foreground call's bounded
 * wait for the archiver's push marker (marker.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MARKER_DIR, type PushedMarker, takeMarker } from './marker.ts';
import { readPid, runsCommand } from './pid-file.ts';

/** The archiver's directory inside pg_wal. */
export const ARCHIVER_DIR = '.gcwal-archiver';
/** The hidden command the archiver runs as. */
export const ARCHIVER_COMMAND = 'wal-archiver';
/** Its pid file, created exclusively (pid-file.ts). */
export const ARCHIVER_PID = 'archiver.pid';
/** Present while the archiver's last push failed: foreground calls then push themselves and report the failure. */
export const FAILING_FILE = 'failing';
/** Its counters and last error, rewritten as they change (archiver-status reads it). */
export const STATUS_FILE = 'status.json';
/** Its structured log, JSON lines. */
export const LOG_FILE = 'log';

/**
 * How long a foreground wal-push waits for the archiver's marker before it
 * pushes the segment itself; the launcher (launcher.sh) waits as long.
 */
export const ASYNC_WAIT_MS = 30_000;
/** How often a waiting call looks for the marker. */
const WAIT_POLL_MS = 20;

export function archiverDir(walDir: string): string {
  return path.join(walDir, ARCHIVER_DIR);
}

/** The pid of the live archiver of `walDir`, or undefined. */
export async function archiverPid(walDir: string): Promise<number | undefined> {
  const pid = await readPid(path.join(archiverDir(walDir), ARCHIVER_PID));
  return pid !== undefined && runsCommand(pid, ARCHIVER_COMMAND) ? pid : undefined;
}

/**
 * Start the archiver for `walDir` as a detached process running this same
 * program (`node <options> <script> wal-archiver <walDir>`) in the data
 * directory with the same environment. It logs to its own file, so its
 * stdio is closed: never a pipe whose reader would wait for it to exit.
 */
export function startArchiver(walDir: string, dataDir: string, env: Readonly<Record<string, string | undefined>>): void {
  const script = process.argv[1];
  if (!script) return;
  const child = spawn(process.execPath, [...process.execArgv, script, ARCHIVER_COMMAND, walDir], {
    cwd: dataDir,
    env: env as NodeJS.ProcessEnv,
    detached: true,
    stdio: 'ignore',
  });
  child.on('error', () => {});
  child.unref();
}

/** Start the archiver of `walDir` unless one runs; resolves with whether one runs or was started. */
export async function ensureArchiver(walDir: string, env: Readonly<Record<string, string | undefined>>): Promise<boolean> {
  if ((await archiverPid(walDir)) !== undefined) return true;
  startArchiver(walDir, path.dirname(walDir), env);
  return false;
}

/**
 * Wait for the archiver to mark `filePath` (a segment of `walDir`) durable,
 * at most `timeoutMs`. Resolves with the marker (consumed, and checked as
 * takeMarker checks it), or undefined as soon as waiting is pointless: the
 * archiver failing, gone (after `startMs` for one just started), a stale
 * marker, the time up. Undefined means the caller pushes the file itself.
 */
export async function waitForMarker(
  walDir: string,
  filePath: string,
  repo: string,
  options: { timeoutMs?: number; startMs?: number; signal?: AbortSignal } = {},
): Promise<PushedMarker | undefined> {
  const name = path.basename(filePath);
  const deadline = Date.now() + (options.timeoutMs ?? ASYNC_WAIT_MS);
  const startBy = Date.now() + (options.startMs ?? 0);
  const markerPath = path.join(walDir, MARKER_DIR, name);
  const failing = path.join(archiverDir(walDir), FAILING_FILE);
  let checked = 0;
  while (Date.now() < deadline && !options.signal?.aborted) {
    if (existsSync(markerPath)) return takeMarker(walDir, name, repo, filePath);
    if (existsSync(failing)) return undefined;
    // The pid file is read every few polls: cheaper, and a dead archiver is still noticed at once.
    if (checked++ % 10 === 0 && Date.now() > startBy && (await archiverPid(walDir)) === undefined) return undefined;
    await sleep(WAIT_POLL_MS);
  }
  return undefined;
}

/** What the archiver reports in its status file. */
export interface ArchiverStatus {
  pid: number;
  started: string;
  updated: string;
  /** segments it made durable since it started */
  archived: number;
  /** pushes that failed since it started */
  failures: number;
  inFlight: string[];
  lastArchived?: { name: string; time: string };
  lastError?: { name: string; message: string; time: string };
}

/** Write the status file (temporary name, rename). */
export async function writeArchiverStatus(walDir: string, status: ArchiverStatus): Promise<void> {
  const file = path.join(archiverDir(walDir), STATUS_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(status) + '\n', { mode: 0o600 });
  await fs.rename(tmp, file);
}

/** The last status the archiver wrote, or undefined. */
export async function readArchiverStatus(walDir: string): Promise<ArchiverStatus | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(archiverDir(walDir), STATUS_FILE), 'utf8')) as ArchiverStatus;
  } catch {
    return undefined;
  }
}
