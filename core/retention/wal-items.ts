/**
 * The catalogue's WAL objects as retention sees them: what kind each is, the
 * timeline in its name and, for objects that sit at a segment (segments,
 * `.partial` and `.backup` files), that segment's position in the WAL.
 */
import { createdWithin, entryInRun, runSegmentSize, spanBounds } from '../catalogue/runs.ts';
import type { Catalogue, CatalogueWalEntry, CatalogueWalRun } from '../catalogue/types.ts';
import { walObjectKey } from '../layout.ts';
import { classifyWalFileName, parseWalSegmentName, walSegmentName } from '../wal/name.ts';
import type { PlannedObjectKind } from './types.ts';

/**
 * Segments `from` to `to` of a run (core/catalogue/runs.ts), taken together:
 * retention decides a run by pieces within which every rule gives the same
 * answer (wal-decide.ts), so a plan costs per run, not per segment.
 */
export interface WalSpan {
  run: CatalogueWalRun;
  from: bigint;
  to: bigint;
  segSize: number;
}

/** One object under `wal/`, or (with `span`) the segments of a run. */
export interface WalItem {
  /** `folded`: a segment of a run, whose generation is only known to be at most `entry.generation`; for a span, its first segment */
  entry: CatalogueWalEntry & { folded?: true };
  /** set for the segments of a run, taken together; `entry`, `key`, `position` and `createdMs` are then its first segment's */
  span?: WalSpan;
  key: string;
  kind: Extract<PlannedObjectKind, 'segment' | 'partial' | 'history' | 'backup-label' | 'other-wal'>;
  timeline?: number;
  /** walPosition of the segment it is at; set for segments, partials and backup labels */
  position?: bigint;
  /** creation time in ms since the epoch; NaN when unreadable */
  createdMs: number;
}

/**
 * An order key for a 24-hex segment name, ignoring the timeline: the
 * "xlogid" part times 2^32 plus the segment within it. The low part is always
 * below 2^32, so the key orders names exactly as their segment numbers at any
 * one segment size, and needs no segment size. Returns undefined for a
 * string that is not 24 hex digits.
 */
export function walPosition(segmentName: string): bigint | undefined {
  if (!/^[0-9A-F]{24}$/.test(segmentName)) return undefined;
  return (BigInt(`0x${segmentName.slice(8, 16)}`) << 32n) + BigInt(`0x${segmentName.slice(16)}`);
}

// A name classifyWalFileName accepts may still be impossible at the
// cluster's segment size (its low part too large); such an object is not a
// segment PostgreSQL would ever ask for, so retention leaves it alone.
function fitsSegmentSize(segmentName: string, segSize: number | undefined): boolean {
  if (segSize === undefined) return true;
  try {
    parseWalSegmentName(segmentName, segSize);
    return true;
  } catch {
    return false;
  }
}

/** The item of segment `segNo` of a span's run, alone. */
export function spanSegment(span: WalSpan, segNo: bigint): WalItem {
  const entry = { ...entryInRun(span.run, segNo, span.segSize), folded: true as const };
  const item = { entry, key: walObjectKey(entry.name), kind: 'segment' as const, timeline: span.run.timeline, createdMs: Date.parse(entry.created) };
  return { ...item, position: walPosition(entry.name) };
}

/** A span of `run` from `from` to `to`, as an item (its first segment's fields, and the span). */
export function spanItem(run: CatalogueWalRun, from: bigint, to: bigint, segSize: number): WalItem {
  const span = { run, from, to, segSize };
  return { ...spanSegment(span, from), span };
}

/** The WAL position of segment `segNo` of a span (see walPosition). */
export function spanPosition(span: WalSpan, segNo: bigint): bigint {
  return walPosition(walSegmentName(span.run.timeline, segNo, span.segSize))!;
}

/** The creation time (ms) a span's run gives segment `segNo` (interpolated inside the run, see createdWithin). */
export function spanCreatedMs(span: WalSpan, segNo: bigint): number {
  return Date.parse(createdWithin(span.run, segNo, span.segSize));
}

/**
 * Every WAL object of the catalogue, classified, sorted by key: one item per
 * unfolded entry and one per run (a span of all its segments).
 */
export function walItems(catalogue: Catalogue): WalItem[] {
  const items: WalItem[] = [];
  const segSize = runSegmentSize(catalogue);
  if (segSize !== undefined)
    for (const run of catalogue.walRuns) {
      const { from, to } = spanBounds(run, segSize);
      // Pieces are found by binary search over creation times, so they must not decrease along the run;
      // a run whose last segment was created before its first (uploads out of order) goes segment by segment.
      if (Date.parse(run.lastCreated) >= Date.parse(run.firstCreated)) items.push(spanItem(run, from, to, segSize));
      else for (let segNo = from; segNo <= to; segNo++) items.push(spanSegment({ run, from, to, segSize }, segNo));
    }
  for (const entry of Object.values(catalogue.wal)) {
    const key = walObjectKey(entry.name);
    const createdMs = Date.parse(entry.created);
    const parsed = classifyWalFileName(entry.name);
    const other: WalItem = { entry, key, kind: 'other-wal', createdMs };
    if (parsed === undefined) {
      items.push(other);
    } else if (parsed.kind === 'history') {
      items.push({ entry, key, kind: 'history', timeline: parsed.timeline, createdMs });
    } else {
      const segmentName = parsed.kind === 'segment' ? parsed.name : parsed.segmentName;
      if (!fitsSegmentSize(segmentName, catalogue.walSegmentSize)) {
        items.push(other);
        continue;
      }
      const kind = parsed.kind === 'backup' ? 'backup-label' : parsed.kind;
      items.push({ entry, key, kind, timeline: parsed.timeline, position: walPosition(segmentName), createdMs });
    }
  }
  return items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * A positioned object of a timeline, or a span of a run's segments (then
 * `position` and `createdMs` are its first segment's).
 */
export interface TimelineObject {
  position: bigint;
  createdMs: number;
  /** for a span: the position of its first segment created after `ms` (not at or before it), or undefined if none is */
  firstCreatedAfter?: (ms: number) => bigint | undefined;
}

/** Per timeline, its positioned objects. */
export type TimelineObjects = Map<number, TimelineObject[]>;

/** Group the positioned items (segments, partials, labels, spans) by timeline. */
export function objectsByTimeline(items: readonly WalItem[]): TimelineObjects {
  const byTimeline: TimelineObjects = new Map();
  for (const item of items) {
    if (item.position === undefined || item.timeline === undefined) continue;
    let list = byTimeline.get(item.timeline);
    if (!list) byTimeline.set(item.timeline, (list = []));
    const span = item.span;
    if (!span) list.push({ position: item.position, createdMs: item.createdMs });
    else
      list.push({
        position: item.position,
        createdMs: item.createdMs,
        firstCreatedAfter: (ms) => {
          const segNo = firstWhere(span.from, span.to, (n) => !(spanCreatedMs(span, n) <= ms));
          return segNo === undefined ? undefined : spanPosition(span, segNo);
        },
      });
  }
  return byTimeline;
}

/**
 * The first n in `from`..`to` for which `holds(n)` is true, for a `holds`
 * that is false and then true (monotone): a binary search. Undefined when it
 * holds nowhere.
 */
export function firstWhere(from: bigint, to: bigint, holds: (n: bigint) => boolean): bigint | undefined {
  if (from > to || !holds(to)) return undefined;
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = lo + (hi - lo) / 2n;
    if (holds(mid)) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}
