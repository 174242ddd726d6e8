import { randomToken } from '../../random-token.ts';
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { StorageError } from '../../errors.ts';
import { retry } from '../../retry.ts';
import { FILE_MODE } from './dirs.ts';
import { isErrno } from './errors.ts';

/**
 * Per-key locks for the file driver's conditional replace and delete, which
 * must check the live generation and swap the object as one step even when
 * several processes (on several hosts, over NFS) share the repository.
 *
 * A lock is a file created with O_EXCL holding its owner (pid, host), a
 * nonce and a journal: the temp files the owner is about to rename into
 * place. A lock whose owner died (same host, pid gone) or that is older than
 * `staleMs` is broken by whoever finds it, after finishing or undoing the
 * dead owner's replace from its journal, so a crash between the two renames
 * of a replace (data, then sidecar) never leaves new data under an old
 * sidecar for long. Breakers serialise on a second O_EXCL file, so two of
 * them never remove a lock one of them has just seen taken afresh.
 */

/** What the holder is about to rename, so a breaker can finish or undo it. */
export interface LockJournal {
  /** complete temp data file, renamed onto the object first */
  tmpData?: string;
  /** temp sidecar, renamed onto `metaPath` once `tmpData` is in place */
  tmpMeta?: string;
  metaPath?: string;
}

interface LockContent extends LockJournal {
  pid: number;
  host: string;
  nonce: string;
  acquired: string;
}

export interface LockOptions {
  signal?: AbortSignal;
  /** a lock older than this is presumed abandoned (default 30 s; holders keep it for milliseconds) */
  staleMs?: number;
  /** give up waiting after this long (default 60 s) */
  timeoutMs?: number;
}

const DEFAULT_STALE_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 60_000;

/** Release a lock taken by `acquireLock`; never throws, releasing twice is harmless. */
export type ReleaseLock = () => Promise<void>;

/**
 * Take the lock at `lockPath` (its directory must exist), waiting with
 * jittered backoff while another live holder has it and breaking it when its
 * holder is gone. Throws a transient StorageError naming the holder after
 * `timeoutMs`, or the signal's reason when aborted.
 */
export async function acquireLock(lockPath: string, journal: LockJournal, options: LockOptions = {}): Promise<ReleaseLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const content: LockContent = { ...journal, pid: process.pid, host: hostname(), nonce: randomToken(8), acquired: new Date().toISOString() };
  try {
    return await retry(
      async () => {
        for (;;) {
          options.signal?.throwIfAborted();
          if (await tryCreate(lockPath, content)) return () => release(lockPath, content.nonce);
          // A holder that is gone: its lock is broken, and taken at once.
          if (!(await breakIfStale(lockPath, staleMs))) throw new LockHeld();
        }
      },
      // Short waits (the holder's work is a rename or two), up to the deadline.
      { retries: Infinity, baseMs: 5, maxMs: 250, deadline, transient: (err) => err instanceof LockHeld, signal: options.signal },
    );
  } catch (err) {
    if (!(err instanceof LockHeld)) throw err;
    options.signal?.throwIfAborted();
    const holder = await readLock(lockPath).catch(() => undefined);
    const who = holder ? `pid ${holder.pid} on ${holder.host} since ${holder.acquired}` : 'another process';
    throw new StorageError(`${path.basename(lockPath)} is locked by ${who}`, true, `retry; if no gcwal process is running there, remove ${lockPath}`);
  }
}

/** The lock was taken by a live holder: worth waiting for. */
class LockHeld extends Error {}

/**
 * Whether a lock file exists at `lockPath` and what state its holder is in:
 * `none`, `live`, or `stale` (then broken, with its journal settled, before
 * this returns `stale`).
 */
export async function inspectLock(lockPath: string, options: Pick<LockOptions, 'staleMs'> = {}): Promise<'none' | 'live' | 'stale'> {
  try {
    await fs.lstat(lockPath);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return 'none';
    throw err;
  }
  return (await breakIfStale(lockPath, options.staleMs ?? DEFAULT_STALE_MS)) ? 'stale' : 'live';
}

async function tryCreate(lockPath: string, content: LockContent): Promise<boolean> {
  let handle;
  try {
    handle = await fs.open(lockPath, 'wx', FILE_MODE);
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  }
  try {
    // Not fsynced: after a crash an empty or lost lock is judged by its age,
    // and the journal only matters while the renames it names are pending.
    await handle.writeFile(JSON.stringify(content));
  } catch (err) {
    await handle.close().catch(() => {});
    await fs.rm(lockPath, { force: true });
    throw err;
  }
  await handle.close();
  return true;
}

async function release(lockPath: string, nonce: string): Promise<void> {
  try {
    // A holder presumed dead may have had its lock broken and taken by
    // another: remove only our own.
    if ((await readLock(lockPath))?.nonce === nonce) await fs.rm(lockPath, { force: true });
  } catch {
    // Nothing to release, or the lock is unreadable: a breaker will judge it.
  }
}

async function readLock(lockPath: string): Promise<LockContent | undefined> {
  const text = await fs.readFile(lockPath, 'utf8');
  try {
    return JSON.parse(text) as LockContent;
  } catch {
    return undefined; // created, content not written yet (or lost in a crash)
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !isErrno(err, 'ESRCH');
  }
}

function isStale(content: LockContent | undefined, mtimeMs: number, staleMs: number): boolean {
  if (Date.now() - mtimeMs > staleMs) return true;
  return content !== undefined && content.host === hostname() && !pidAlive(content.pid);
}

/**
 * If the lock at `lockPath` is stale, settle its journal and remove it;
 * returns true when the path may be free now (also when it vanished).
 */
async function breakIfStale(lockPath: string, staleMs: number): Promise<boolean> {
  const first = await snapshot(lockPath);
  if (!first) return true;
  if (!isStale(first.content, first.mtimeMs, staleMs)) return false;
  const breakPath = `${lockPath}.break`;
  const breakContent: LockContent = { pid: process.pid, host: hostname(), nonce: randomToken(8), acquired: new Date().toISOString() };
  if (!(await tryCreate(breakPath, breakContent))) {
    // Another breaker is at it; its own break lock may be abandoned too.
    const other = await snapshot(breakPath);
    if (other && isStale(other.content, other.mtimeMs, staleMs)) await fs.rm(breakPath, { force: true });
    return false;
  }
  try {
    // Under the break lock nobody else removes the lock, and its dead owner
    // will not: if it is still the one judged stale, it is safe to settle.
    const again = await snapshot(lockPath);
    if (!again) return true;
    if (again.ino !== first.ino || again.content?.nonce !== first.content?.nonce) return false;
    if (again.content) await settleJournal(again.content);
    await fs.rm(lockPath, { force: true });
    return true;
  } finally {
    await release(breakPath, breakContent.nonce);
  }
}

async function snapshot(lockPath: string): Promise<{ ino: number; mtimeMs: number; content: LockContent | undefined } | undefined> {
  try {
    const st = await fs.stat(lockPath);
    return { ino: st.ino, mtimeMs: st.mtimeMs, content: await readLock(lockPath) };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/**
 * Finish or undo a dead holder's replace. The holder creates tmpData, then
 * tmpMeta, then renames tmpData and then tmpMeta into place; so a tmpMeta
 * without its tmpData means the data is already live and the sidecar must
 * follow (roll forward); otherwise nothing was renamed and both temp files go
 * (roll back, sidecar first, so a concurrent settler never mistakes a
 * half-removed pair for a rolled-forward one). Idempotent and safe to run
 * twice at once: a rename that lost the race finds nothing to rename.
 */
export async function settleJournal(journal: LockJournal): Promise<void> {
  const { tmpData, tmpMeta, metaPath } = journal;
  if (tmpMeta && metaPath && (await present(tmpMeta)) && !(tmpData && (await present(tmpData)))) {
    try {
      await fs.rename(tmpMeta, metaPath);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    return;
  }
  if (tmpMeta) await fs.rm(tmpMeta, { force: true });
  if (tmpData) await fs.rm(tmpData, { force: true });
}

async function present(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}
