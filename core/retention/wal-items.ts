/**
 * The catalogue's WAL objects as retention sees them: what kind each is, the
 * timeline in its name and, for objects that sit at a segment (segments,
 * `.partial` and `.backup` files), that segment's position in the WAL.
 */
import { walEntries } from '../catalogue/runs.ts';
import type { Catalogue, CatalogueWalEntry } from '../catalogue/types.ts';
import { walObjectKey } from '../layout.ts';
import { classifyWalFileName, parseWalSegmentName } from '../wal/name.ts';
import type { PlannedObjectKind } from './types.ts';

/** One object under `wal/`. */
export interface WalItem {
  /** `folded`: a segment of a run, whose generation is only known to be at most `entry.generation` */
  entry: CatalogueWalEntry & { folded?: true };
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

/** Every WAL object of the catalogue, classified, sorted by key. */
export function walItems(catalogue: Catalogue): WalItem[] {
  const items: WalItem[] = [];
  for (const entry of walEntries(catalogue)) {
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

/** Per timeline, the positions and creation times of its positioned objects. */
export type TimelineObjects = Map<number, { position: bigint; createdMs: number }[]>;

/** Group the positioned items (segments, partials, labels) by timeline. */
export function objectsByTimeline(items: readonly WalItem[]): TimelineObjects {
  const byTimeline: TimelineObjects = new Map();
  for (const item of items) {
    if (item.position === undefined || item.timeline === undefined) continue;
    let list = byTimeline.get(item.timeline);
    if (!list) byTimeline.set(item.timeline, (list = []));
    list.push({ position: item.position, createdMs: item.createdMs });
  }
  return byTimeline;
}
