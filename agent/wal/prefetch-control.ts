/**
 * How wal-fetch and the background prefetcher find each other through the
 * spool directory: the prefetcher's pid file (one prefetcher per spool; a
 * dead one is replaced), the request file (the segment PostgreSQL asked for
 * last), and starting the prefetcher as a detached process.
 */
import { spawn } from 'node:child_process';
import { fstatSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { randomToken } from '../../core/random-token.ts';
import { acquirePidFile, readPid, releasePidFile, runsCommand } from './pid-file.ts';
import { ensureSpoolDir, spoolDir } from './spool.ts';

/** The prefetcher's pid file in the spool. */
export const PID_FILE = 'fetcher.pid';
/** The segment PostgreSQL asked for last, written by wal-fetch. */
export const REQUEST_FILE = 'request';
/** The hidden command the prefetcher runs as. */
export const PREFETCH_COMMAND = 'wal-prefetch';

/** Whether `pid` is a running prefetcher (pid-file.ts). */
export function isPrefetcher(pid: number): boolean {
  return runsCommand(pid, PREFETCH_COMMAND);
}

/** Whether a live prefetcher holds the spool of `walDir`. */
export async function prefetcherRunning(walDir: string): Promise<boolean> {
  const pid = await readPid(path.join(spoolDir(walDir), PID_FILE));
  return pid !== undefined && isPrefetcher(pid);
}

/**
 * Take the spool for this process: its pid file, created exclusively
 * (pid-file.ts). False when a live prefetcher holds it.
 */
export async function acquirePrefetchLock(walDir: string): Promise<boolean> {
  const dir = await ensureSpoolDir(walDir);
  return acquirePidFile(path.join(dir, PID_FILE), PREFETCH_COMMAND);
}

/** Give the spool up, if this process still holds it. */
export async function releasePrefetchLock(walDir: string): Promise<void> {
  await releasePidFile(path.join(spoolDir(walDir), PID_FILE));
}

/**
 * Remove the request file and the spool directory once it holds nothing
 * else (a prefetcher that has just started keeps it).
 */
export async function removeSpoolDir(walDir: string): Promise<void> {
  await fs.rm(path.join(spoolDir(walDir), REQUEST_FILE), { force: true }).catch(() => {});
  await fs.rmdir(spoolDir(walDir)).catch(() => {});
}

/** Whether this process still holds the spool (someone may have cleared it). */
export async function holdsPrefetchLock(walDir: string): Promise<boolean> {
  return (await readPid(path.join(spoolDir(walDir), PID_FILE))) === process.pid;
}

/**
 * Tell the prefetcher which segment PostgreSQL asked for: `<name> <nonce>`,
 * renamed into place, so each call reads as a new one even for the same name.
 */
export async function writeRequest(walDir: string, name: string): Promise<void> {
  const dir = await ensureSpoolDir(walDir);
  const tmp = path.join(dir, `.${REQUEST_FILE}.${process.pid}.${randomToken(4)}.tmp`);
  try {
    await fs.writeFile(tmp, `${name} ${Date.now()}.${randomToken(4)}\n`, { flag: 'wx', mode: 0o600 });
    await fs.rename(tmp, path.join(dir, REQUEST_FILE));
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/** The last request: the text as written (to tell a new one) and the name; undefined when none. */
export async function readRequest(walDir: string): Promise<{ text: string; name: string } | undefined> {
  const text = await fs.readFile(path.join(spoolDir(walDir), REQUEST_FILE), 'utf8').catch(() => undefined);
  const name = text?.split(' ')[0];
  return text && name && /^[0-9A-F]{24}$/.test(name) ? { text, name } : undefined;
}

/**
 * Start the prefetcher for `walDir` as a detached process running this same
 * program (`node <options> <script> wal-prefetch <walDir>`) in the data
 * directory with the same environment. Its stderr is this process's when
 * that is a file (PostgreSQL's log under pg_ctl -l): never a pipe, whose
 * reader would wait for the prefetcher to exit.
 */
export function startPrefetcher(walDir: string, dataDir: string, env: Readonly<Record<string, string | undefined>>): void {
  const script = process.argv[1];
  if (!script) return;
  let stderr: number | 'ignore' = 'ignore';
  try {
    if (fstatSync(2).isFile()) stderr = 2;
  } catch {
    // no stderr at all
  }
  const child = spawn(process.execPath, [...process.execArgv, script, PREFETCH_COMMAND, walDir], {
    cwd: dataDir,
    env: env as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['ignore', 'ignore', stderr],
  });
  child.on('error', () => {});
  child.unref();
}
