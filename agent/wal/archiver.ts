/**
 * The background archiver of asynchronous mode (GCWAL_ARCHIVE_ASYNC=on),
 * started by the first wal-push (archiver-control.ts), one per pg_wal. It
 * watches `archive_status` for `.ready` segments (fs.watch, and a periodic
 * scan when a notice is missed), archives them oldest first with bounded
 * parallelism over one storage client, and marks each one only once it is
 * durable (ahead.ts pushOne, marker.ts): the same marker push-ahead writes,
 * which the launcher answers PostgreSQL's call from. It never answers
 * PostgreSQL itself and never drops a segment: a failure is logged, noted in
 * the `failing` file (foreground calls then push the segment themselves and
 * report the error), and retried after a backoff. It stops when the
 * postmaster is gone, its pid file was taken over, or nothing was ready for
 * a while. `.partial`, `.history` and `.backup` files are left to the
 * foreground call.
 */
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from '../log.ts';
import { pushOne, readySegments } from './ahead.ts';
import { ARCHIVER_COMMAND, ARCHIVER_PID, type ArchiverStatus, archiverDir, FAILING_FILE, writeArchiverStatus } from './archiver-control.ts';
import { type DirWaiter, watchDirectory } from './dir-waiter.ts';
import { hasValidMarker, pruneMarkers } from './marker.ts';
import { acquirePidFile, readPid, releasePidFile } from './pid-file.ts';
import type { PushResult } from './push.ts';

/** Segments in flight at once by default. */
export const ARCHIVER_CONCURRENCY = 4;

export interface ArchiverOptions {
  walDir: string;
  /** the data directory, whose postmaster.pid says whether PostgreSQL still runs */
  dataDir: string;
  /** the repository URL the markers vouch for */
  repo: string;
  /** archive one file durably (pushWalFile bound to the open storage) */
  push: (filePath: string) => Promise<PushResult>;
  log: Logger;
  signal?: AbortSignal;
  concurrency?: number;
  /** stop after this long with nothing ready */
  idleMs?: number;
  /** how often archive_status is scanned without a change notice */
  pollMs?: number;
}

export interface ArchiverResult {
  reason: string;
  archived: number;
  failures: number;
}

/** A failed segment's next try: 0.5 s doubling to 4 s. */
function retryAt(now: number, count: number): number {
  return now + Math.min(500 * 2 ** (count - 1), 4000);
}

function postmasterAlive(text: string): boolean {
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Run until there is a reason to stop. Never throws for a segment. */
export async function runArchiver(o: ArchiverOptions): Promise<ArchiverResult> {
  const dir = archiverDir(o.walDir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const pidFile = path.join(dir, ARCHIVER_PID);
  if (!(await acquirePidFile(pidFile, ARCHIVER_COMMAND))) return { reason: 'another archiver runs', archived: 0, failures: 0 };
  const idleMs = o.idleMs ?? 60_000;
  const pollMs = o.pollMs ?? 500;
  const concurrency = o.concurrency ?? ARCHIVER_CONCURRENCY;
  const failingFile = path.join(dir, FAILING_FILE);
  const status: ArchiverStatus = { pid: process.pid, started: new Date().toISOString(), updated: '', archived: 0, failures: 0, inFlight: [] };
  const inFlight = new Set<string>();
  const marked = new Set<string>();
  const failed = new Map<string, { count: number; until: number }>();
  const running = new Set<Promise<void>>();
  let dirty = true;
  let waiter: DirWaiter | undefined;

  const archiveOne = async (name: string) => {
    inFlight.add(name);
    const started = Date.now();
    try {
      if (await pushOne(o.walDir, name, o)) {
        marked.add(name);
        status.archived++;
        status.lastArchived = { name, time: new Date().toISOString() };
        o.log.info(`archived ${name}`, { segment: name, ms: Date.now() - started });
      } else {
        o.log.debug(`${name} was removed or changed while it was archived; left to wal-push`, { segment: name });
      }
      failed.delete(name);
      if (failed.size === 0) await fs.rm(failingFile, { force: true });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const count = (failed.get(name)?.count ?? 0) + 1;
      failed.set(name, { count, until: retryAt(Date.now(), count) });
      status.failures++;
      status.lastError = { name, message, time: new Date().toISOString() };
      await fs.writeFile(failingFile, `${name} ${message}\n`, { mode: 0o600 }).catch(() => {});
      o.log.warn(`archiving ${name} failed; retrying, and wal-push pushes it itself meanwhile`, { segment: name, error: message, attempt: count });
    } finally {
      inFlight.delete(name);
      dirty = true;
      waiter?.wake();
    }
  };

  try {
    waiter = watchDirectory(path.join(o.walDir, 'archive_status'));
    o.log.info('archiver started', { walDir: o.walDir, concurrency });
    let lastBusy = Date.now();
    for (;;) {
      if (o.signal?.aborted) return { reason: 'interrupted', ...counts(status) };
      if ((await readPid(pidFile)) !== process.pid) return { reason: 'the pid file was taken over', ...counts(status) };
      const postmaster = await fs.readFile(path.join(o.dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
      if (!postmasterAlive(postmaster)) return { reason: 'the postmaster is gone', ...counts(status) };

      const { next, ready } = await readySegments(o.walDir, '', Number.MAX_SAFE_INTEGER);
      for (const name of marked) if (!ready.has(name)) marked.delete(name);
      for (const name of failed.keys()) if (!ready.has(name)) failed.delete(name);
      if (failed.size === 0 && existsSync(failingFile)) await fs.rm(failingFile, { force: true });
      await pruneMarkers(o.walDir, ready);
      const now = Date.now();
      for (const name of next) {
        if (running.size >= concurrency) break;
        if (inFlight.has(name) || marked.has(name) || (failed.get(name)?.until ?? 0) > now) continue;
        if (await hasValidMarker(o.walDir, name, o.repo, path.join(o.walDir, name))) {
          marked.add(name);
          continue;
        }
        const job = archiveOne(name).finally(() => running.delete(job));
        running.add(job);
      }
      if (running.size > 0 || next.some((name) => !marked.has(name))) lastBusy = Date.now();
      if (dirty) {
        dirty = false;
        status.updated = new Date().toISOString();
        status.inFlight = [...inFlight].sort();
        await writeArchiverStatus(o.walDir, status).catch(() => {});
      }
      if (Date.now() - lastBusy > idleMs) return { reason: 'idle', ...counts(status) };
      await waiter.wait(pollMs);
    }
  } finally {
    waiter?.close();
    await Promise.allSettled([...running]);
    await writeArchiverStatus(o.walDir, { ...status, updated: new Date().toISOString(), inFlight: [] }).catch(() => {});
    await releasePidFile(pidFile);
  }
}

function counts(status: ArchiverStatus): { archived: number; failures: number } {
  return { archived: status.archived, failures: status.failures };
}
