/**
 * What the background prefetcher fetches next: a pure function of what it
 * knows (the timeline and segment PostgreSQL is at, what is spooled, in
 * flight, missing or failed) and its settings. No I/O, so every rule is a
 * table test (test/agent/wal/prefetch-plan.test.ts).
 */
import { walSegmentName } from '../../core/wal/name.ts';

export interface PrefetchSettings {
  /** segments ahead of the one PostgreSQL is at */
  depth: number;
  /** fetches in flight at once */
  concurrency: number;
  /** bytes the spool may hold, counting fetches in flight as whole segments */
  spoolBytes: number;
  segmentSize: number;
}

/** A name the archive did not have, or whose fetch failed: not asked again before `until` (ms). */
export interface Deferred {
  until: number;
  /** consecutive misses or failures, for the backoff */
  count: number;
}

export interface PrefetchState {
  timeline: number;
  /** the segment number PostgreSQL asked for or was served last: prefetch starts after it */
  cursor: bigint;
  /** spooled segments and their sizes */
  spooled: Map<string, number>;
  inFlight: Set<string>;
  missing: Map<string, Deferred>;
  failed: Map<string, Deferred>;
}

/** The longest wait before a missing or failed name is asked again. */
export const MAX_DEFER_MS = 8000;

/** When a name that missed or failed `count` times in a row is asked again. */
export function deferUntil(now: number, count: number): number {
  return now + Math.min(MAX_DEFER_MS, 500 * 2 ** Math.min(count - 1, 10));
}

/**
 * The names to start fetching now, in order: the segments after the cursor
 * on its timeline, up to `depth` ahead, that are neither spooled, in flight
 * nor deferred, within the free fetch slots and spool bytes. Nothing past a
 * name the archive did not have: WAL is archived in order, so the first
 * missing name is the end of the archive for now, and only it is asked
 * again (after its backoff), which keeps the end of a recovery or a
 * standby's wait to one request per backoff period.
 */
export function planFetches(state: PrefetchState, settings: PrefetchSettings, now: number): string[] {
  let slots = settings.concurrency - state.inFlight.size;
  let bytes = settings.spoolBytes - state.inFlight.size * settings.segmentSize;
  for (const size of state.spooled.values()) bytes -= size;
  const out: string[] = [];
  for (let i = 1n; i <= BigInt(settings.depth) && slots > 0 && bytes >= settings.segmentSize; i++) {
    let name: string;
    try {
      name = walSegmentName(state.timeline, state.cursor + i, settings.segmentSize);
    } catch {
      break; // past the end of the WAL space
    }
    const missing = state.missing.get(name);
    if (missing) {
      if (missing.until <= now && !state.inFlight.has(name)) out.push(name);
      break;
    }
    if (state.spooled.has(name) || state.inFlight.has(name)) continue;
    const failed = state.failed.get(name);
    if (failed && failed.until > now) continue;
    out.push(name);
    slots--;
    bytes -= settings.segmentSize;
  }
  return out;
}
