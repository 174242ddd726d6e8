/**
 * The background prefetcher (started by wal-fetch, see prefetch-control.ts):
 * keeps the segments after the one PostgreSQL asked for, on its timeline,
 * fetched, decoded and verified in the spool (spool.ts), so that the calls
 * for them are a rename. It follows PostgreSQL through the request file
 * wal-fetch writes and through the spooled segments that disappear (served
 * by the launcher or by wal-fetch), drops what no longer applies, and stops
 * when recovery ends, the postmaster is gone, the restore was replaced, or
 * nobody asked for a while. It never answers PostgreSQL itself: a failed or
 * missing prefetch only means wal-fetch fetches that segment on its own.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { walObjectKey } from '../../core/layout.ts';
import { readRepositoryIdentity } from '../../core/repository.ts';
import { openDecoded, recordedRawChecksum } from '../../core/storage/decode.ts';
import type { Storage } from '../../core/storage/types.ts';
import { parseWalSegmentName } from '../../core/wal/name.ts';
import type { Logger } from '../log.ts';
import { type DirWaiter, watchDirectory } from './dir-waiter.ts';
import { sameFile, type FileIdentity } from './marker.ts';
import { acquirePrefetchLock, holdsPrefetchLock, readRequest, releasePrefetchLock, removeSpoolDir } from './prefetch-control.ts';
import { deferUntil, planFetches, type PrefetchSettings, type PrefetchState } from './prefetch-plan.ts';
import { clearSpool, listSpool, readSpoolEntry, recoveryIdentity, removeSpooled, spoolDir, spoolSegment } from './spool.ts';

export interface PrefetcherOptions {
  walDir: string;
  /** the data directory (PostgreSQL's, where restore_command runs) */
  dataDir: string;
  repo: string;
  storage: Storage;
  settings: Omit<PrefetchSettings, 'segmentSize'>;
  log: Logger;
  signal?: AbortSignal;
  /** stop after this long without a request or a served segment */
  idleMs?: number;
  /** how often the spool and the data directory are looked at without a change notice */
  pollMs?: number;
}

export interface PrefetcherResult {
  reason: string;
  spooled: number;
  served: number;
}

/** Why the prefetcher should stop now, or undefined to go on. */
async function stopReason(o: PrefetcherOptions, recovery: FileIdentity): Promise<string | undefined> {
  if (o.signal?.aborted) return 'interrupted';
  if (!(await holdsPrefetchLock(o.walDir))) return 'the spool was taken over';
  const now = await recoveryIdentity(o.dataDir);
  if (!now || !sameFile(now, recovery)) return 'the data directory was restored again';
  if (!existsSync(path.join(o.dataDir, 'recovery.signal')) && !existsSync(path.join(o.dataDir, 'standby.signal'))) return 'recovery ended';
  const pid = Number.parseInt((await readFile(path.join(o.dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return 'the postmaster is gone';
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return 'the postmaster is gone';
  }
  return undefined;
}

/**
 * Run until there is a reason to stop; resolves with it and the counts.
 * Never throws for a segment: a failure is logged and left to wal-fetch.
 */
export async function runPrefetcher(o: PrefetcherOptions): Promise<PrefetcherResult> {
  const recovery = await recoveryIdentity(o.dataDir);
  if (!recovery) return { reason: 'not a data directory', spooled: 0, served: 0 };
  if (!(await acquirePrefetchLock(o.walDir))) return { reason: 'another prefetcher runs', spooled: 0, served: 0 };
  const idleMs = o.idleMs ?? 60_000;
  const pollMs = o.pollMs ?? 200;
  let waiter: DirWaiter | undefined;
  const counts = { spooled: 0, served: 0 };
  // Fetches in flight are cancelled and awaited before the spool is cleared on the way out.
  const inner = new AbortController();
  const abort = () => inner.abort();
  o.signal?.addEventListener('abort', abort, { once: true });
  const signal = inner.signal;
  const running = new Set<Promise<void>>();
  let keepSpool = false;
  try {
    const identity = await readRepositoryIdentity(o.storage, { signal: o.signal });
    if (!identity) return { reason: 'the repository has no gcwal.json', ...counts };
    const settings: PrefetchSettings = { ...o.settings, segmentSize: identity.walSegmentSize };
    const state: PrefetchState = { timeline: 0, cursor: 0n, spooled: new Map(), inFlight: new Set(), missing: new Map(), failed: new Map() };

    // Keep only what an earlier prefetcher of this very restore left complete.
    const { entries } = await listSpool(o.walDir);
    for (const name of entries) {
      const entry = await readSpoolEntry(o.walDir, name);
      if (entry && entry.repo === o.repo && sameFile(entry.recovery, recovery)) state.spooled.set(name, entry.rawSize);
    }
    await clearSpool(o.walDir, (name) => state.spooled.has(name), true);

    waiter = watchDirectory(spoolDir(o.walDir));
    const position = (name: string) => {
      try {
        return parseWalSegmentName(name, settings.segmentSize);
      } catch {
        return undefined;
      }
    };
    const applies = (name: string) => {
      const p = position(name);
      return p !== undefined && p.timeline === state.timeline && p.segNo > state.cursor;
    };
    const fetchOne = async (name: string) => {
      state.inFlight.add(name);
      try {
        const info = await o.storage.stat(walObjectKey(name), { signal });
        if (!info) {
          const count = (state.missing.get(name)?.count ?? 0) + 1;
          state.missing.set(name, { count, until: deferUntil(Date.now(), count) });
          return;
        }
        state.missing.delete(name);
        const raw = recordedRawChecksum(info);
        // A long-lived process: the native decoder's load is paid once, and its CPU is taken from PostgreSQL's replay.
        const content = await openDecoded(o.storage, info, { signal, native: true });
        await spoolSegment(
          o.walDir,
          content,
          { name, repo: o.repo, recovery, key: info.key, generation: info.generation, rawSize: raw.size, rawCrc32c: raw.crc32c },
          signal,
        );
        state.failed.delete(name);
        if (applies(name)) {
          state.spooled.set(name, raw.size);
          counts.spooled++;
          o.log.debug(`prefetched ${name}`);
        } else {
          await removeSpooled(o.walDir, name);
        }
      } catch (err) {
        const count = (state.failed.get(name)?.count ?? 0) + 1;
        state.failed.set(name, { count, until: deferUntil(Date.now(), count) });
        if (!signal.aborted)
          o.log.warn(`prefetching ${name} failed; wal-fetch will fetch it itself when PostgreSQL asks`, {
            error: err instanceof Error ? err.message : String(err),
          });
      } finally {
        state.inFlight.delete(name);
        waiter?.wake();
      }
    };

    let lastRequest: string | undefined;
    let lastActivity = Date.now();
    for (;;) {
      const reason = await stopReason(o, recovery);
      if (reason) {
        keepSpool = reason === 'the spool was taken over';
        return { reason, ...counts };
      }

      const request = await readRequest(o.walDir);
      if (request && request.text !== lastRequest) {
        lastRequest = request.text;
        lastActivity = Date.now();
        const p = position(request.name);
        if (p) {
          if (p.timeline !== state.timeline) {
            state.missing.clear();
            state.failed.clear();
          }
          state.timeline = p.timeline;
          state.cursor = p.segNo;
        }
      }
      // Spooled segments that are gone were served: PostgreSQL is past them.
      const { segments } = await listSpool(o.walDir);
      for (const name of [...state.spooled.keys()]) {
        if (segments.has(name)) continue;
        state.spooled.delete(name);
        await removeSpooled(o.walDir, name);
        counts.served++;
        lastActivity = Date.now();
        const p = position(name);
        if (p && p.timeline === state.timeline && p.segNo > state.cursor) state.cursor = p.segNo;
      }
      // Another timeline, or not after the segment being replayed: no longer of use.
      for (const name of [...state.spooled.keys()]) {
        if (applies(name)) continue;
        state.spooled.delete(name);
        await removeSpooled(o.walDir, name);
      }
      for (const name of [...state.missing.keys(), ...state.failed.keys()]) {
        if (!applies(name)) {
          state.missing.delete(name);
          state.failed.delete(name);
        }
      }

      if (state.timeline !== 0) {
        for (const name of planFetches(state, settings, Date.now())) {
          const job = fetchOne(name).finally(() => running.delete(job));
          running.add(job);
        }
      }
      if (running.size === 0 && Date.now() - lastActivity > idleMs) return { reason: 'idle', ...counts };
      await waiter.wait(pollMs);
    }
  } finally {
    waiter?.close();
    inner.abort();
    o.signal?.removeEventListener('abort', abort);
    await Promise.allSettled([...running]);
    if (!keepSpool) await clearSpool(o.walDir, () => false, true).catch(() => {});
    await releasePrefetchLock(o.walDir);
    if (!keepSpool) await removeSpoolDir(o.walDir);
  }
}
