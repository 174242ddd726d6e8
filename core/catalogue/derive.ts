/**
 * What the catalogue says about restorability, computed on demand and never
 * stored: per timeline the contiguous runs of WAL, the holes in them, forks
 * without their history file, and the recoverable windows. Pure functions of
 * the catalogue; WAL names are read with the catalogue's segment size.
 */
import { isPlaceholderBackup } from './apply.ts';
import type { Catalogue, CatalogueBackup, CatalogueWalEntry, CatalogueWalRun, ValidationState } from './types.ts';
import { compareTimes } from './keys.ts';
import { createdWithin, entryInRun, spanBounds } from './runs.ts';
import { formatLsn, MAX_LSN, parseLsn } from '../wal/lsn.ts';
import {
  classifyWalFileName,
  DEFAULT_SEGMENT_SIZE,
  historyFileName,
  isValidSegmentSize,
  parseWalSegmentName,
  segmentNumberOfLsn,
  walSegmentName,
} from '../wal/name.ts';

/** A segment of the catalogue with its number. */
export interface TimelineSegment {
  segNo: bigint;
  entry: CatalogueWalEntry;
}

/**
 * Present segments `from` to `to` (inclusive) of one timeline, all in one
 * state: a run of folded valid segments, or one segment's own entry.
 * Everything here works piece by piece, so its cost follows the number of
 * runs and unsettled segments, not the number of segments.
 */
export interface TimelinePiece {
  from: bigint;
  to: bigint;
  firstName: string;
  lastName: string;
  /** creation times of the first and last segments (for a part of a run: as the run knows them) */
  firstCreated: string;
  lastCreated: string;
  state: ValidationState;
  /** the entry, when the piece is one unfolded segment */
  entry?: CatalogueWalEntry;
  /** the run, when the piece is (part of) a run */
  run?: CatalogueWalRun;
}
/** A run of consecutive segments of one timeline, with how many are in each validation state. */
export interface WalRange {
  timeline: number;
  first: string;
  last: string;
  segments: number;
  valid: number;
  pending: number;
  corrupt: number;
}

/**
 * Missing segments of one timeline: `count` segments from `missing` on,
 * between `after` and `before` (both present). `after` is absent for a hole
 * at the start of a timeline, between the switch point its history file
 * names and its first segment.
 */
export interface WalGap {
  timeline: number;
  after?: string;
  missing: string;
  count: number;
  before: string;
  /** when `before` was archived */
  beforeCreated: string;
}

/** A point recovery can stop at. */
export interface RestorePoint {
  /** `%X/%X` */
  lsn: string;
  /** ISO; for the end of WAL approximate (when its last segment was archived) */
  time: string;
}

/** One stretch of restorable points: from the end of a backup to the end of the unbroken WAL after it. */
export interface RecoverableSpan {
  /** the earliest point: the stop of the oldest backup starting this stretch */
  from: RestorePoint & { backup: string };
  /** the end of the last segment of the unbroken run of WAL from that backup's start */
  to: RestorePoint & { segment: string };
  /** segments the restore needs that are not yet validated (present, but unchecked) */
  unvalidatedSegments: number;
}

/**
 * The recoverable window of one timeline: `earliest` and `latest` are the
 * ends of the first and last of its `spans` (absent when it has none: no
 * valid backup with unbroken WAL). `newestWal` is its highest segment.
 */
export interface TimelineWindow {
  timeline: number;
  earliest?: RestorePoint & { backup: string };
  latest?: RestorePoint & { segment: string };
  spans: RecoverableSpan[];
  newestWal?: { name: string; created: string };
}

/** The segment size the catalogue's names are read with: its own, else 16 MiB. */
export function catalogueSegmentSize(catalogue: Catalogue): number {
  return catalogue.walSegmentSize !== undefined && isValidSegmentSize(catalogue.walSegmentSize) ? catalogue.walSegmentSize : DEFAULT_SEGMENT_SIZE;
}

/**
 * The catalogue's WAL segments by timeline, ascending, as pieces (see
 * TimelinePiece). `.partial`, `.history` and `.backup` files are not
 * segments, and names that cannot exist at the segment size are left out.
 */
export function timelinePieces(catalogue: Catalogue): Map<number, TimelinePiece[]> {
  const segSize = catalogueSegmentSize(catalogue);
  const byTimeline = new Map<number, TimelinePiece[]>();
  const add = (timeline: number, piece: TimelinePiece) => {
    const list = byTimeline.get(timeline) ?? [];
    list.push(piece);
    byTimeline.set(timeline, list);
  };
  for (const entry of Object.values(catalogue.wal)) {
    if (classifyWalFileName(entry.name)?.kind !== 'segment') continue;
    let id;
    try {
      id = parseWalSegmentName(entry.name, segSize);
    } catch {
      continue;
    }
    add(id.timeline, {
      from: id.segNo,
      to: id.segNo,
      firstName: entry.name,
      lastName: entry.name,
      firstCreated: entry.created,
      lastCreated: entry.created,
      state: entry.state,
      entry,
    });
  }
  for (const run of catalogue.walRuns ?? []) {
    let bounds;
    try {
      bounds = spanBounds(run, segSize);
    } catch {
      continue;
    }
    add(run.timeline, {
      ...bounds,
      firstName: run.first,
      lastName: run.last,
      firstCreated: run.firstCreated,
      lastCreated: run.lastCreated,
      state: 'valid',
      run,
    });
  }
  for (const list of byTimeline.values()) list.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  return new Map([...byTimeline].sort(([a], [b]) => a - b));
}

/**
 * The catalogue's WAL segments by timeline, ascending, one by one (runs
 * expanded: for small catalogues and tests; timelinePieces scales).
 */
export function timelineSegments(catalogue: Catalogue): Map<number, TimelineSegment[]> {
  const segSize = catalogueSegmentSize(catalogue);
  const out = new Map<number, TimelineSegment[]>();
  for (const [timeline, pieces] of timelinePieces(catalogue)) {
    const list: TimelineSegment[] = [];
    for (const p of pieces) {
      if (p.entry) list.push({ segNo: p.from, entry: p.entry });
      else for (let segNo = p.from; segNo <= p.to; segNo++) list.push({ segNo, entry: entryInRun(p.run!, segNo, segSize) });
    }
    out.set(timeline, list);
  }
  return out;
}

/** Segments in a piece. */
function pieceLength(p: TimelinePiece): number {
  return Number(p.to - p.from) + 1;
}

/** [first, last] index pairs of the stretches of adjoining pieces in an ascending list. */
function runs(list: readonly TimelinePiece[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < list.length; i++) {
    if (i > 0 && list[i].from === list[i - 1].to + 1n) out[out.length - 1][1] = i;
    else out.push([i, i]);
  }
  return out;
}

/** The contiguous runs of WAL per timeline, by timeline then position. */
export function walRanges(catalogue: Catalogue): WalRange[] {
  const out: WalRange[] = [];
  for (const [timeline, list] of timelinePieces(catalogue)) {
    for (const [i, j] of runs(list)) {
      const range: WalRange = { timeline, first: list[i].firstName, last: list[j].lastName, segments: 0, valid: 0, pending: 0, corrupt: 0 };
      for (let k = i; k <= j; k++) {
        range.segments += pieceLength(list[k]);
        range[list[k].state] += pieceLength(list[k]);
      }
      out.push(range);
    }
  }
  return out;
}

/** A parsed history line. */
interface Ancestor {
  parentTimeline: number;
  switchLsn: bigint;
}

/**
 * The ancestors of `timeline` from its `.history` entry (oldest first), `[]`
 * for timeline 1, undefined when the history is unknown (file missing, not
 * read yet, or unreadable).
 */
function ancestorsOf(catalogue: Catalogue, timeline: number): Ancestor[] | undefined {
  if (timeline === 1) return [];
  const lines = catalogue.wal[historyFileName(timeline)]?.history;
  if (!lines) return undefined;
  try {
    return lines.map((line) => ({ parentTimeline: line.parentTimeline, switchLsn: parseLsn(line.switchLsn) }));
  } catch {
    return undefined;
  }
}

/**
 * The holes in each timeline's WAL: between its first and last present
 * segments, and (when its history is known) between its switch point and its
 * first segment. Corrupt segments are present, not holes.
 */
export function walGaps(catalogue: Catalogue): WalGap[] {
  const segSize = catalogueSegmentSize(catalogue);
  const out: WalGap[] = [];
  for (const [timeline, list] of timelinePieces(catalogue)) {
    const switchedAt = ancestorsOf(catalogue, timeline)?.at(-1)?.switchLsn;
    if (switchedAt !== undefined) {
      const begin = segmentNumberOfLsn(switchedAt, segSize);
      if (list[0].from > begin)
        out.push({
          timeline,
          missing: walSegmentName(timeline, begin, segSize),
          count: Number(list[0].from - begin),
          before: list[0].firstName,
          beforeCreated: list[0].firstCreated,
        });
    }
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1];
      if (list[i].from === prev.to + 1n) continue;
      out.push({
        timeline,
        after: prev.lastName,
        missing: walSegmentName(timeline, prev.to + 1n, segSize),
        count: Number(list[i].from - prev.to - 1n),
        before: list[i].firstName,
        beforeCreated: list[i].firstCreated,
      });
    }
  }
  return out;
}

/** Timelines whose WAL files or backups are present, in ascending order. */
function presentTimelines(catalogue: Catalogue): number[] {
  const timelines = new Set<number>();
  for (const name of Object.keys(catalogue.wal)) {
    const kind = classifyWalFileName(name);
    if (kind && kind.kind !== 'history') timelines.add(kind.timeline);
  }
  for (const run of catalogue.walRuns ?? []) timelines.add(run.timeline);
  for (const backup of Object.values(catalogue.backups)) if (!isPlaceholderBackup(backup)) timelines.add(backup.timeline);
  // In the form an update works on, settled backups are summarised (settled.ts).
  for (const timeline of Object.keys(catalogue.settled?.timelines ?? {})) timelines.add(Number(timeline));
  return [...timelines].sort((a, b) => a - b);
}

/**
 * Timelines after the first that have WAL or a backup but no `.history` file
 * in `wal/`: recovery cannot follow the fork onto them.
 */
export function timelinesWithoutHistory(catalogue: Catalogue): number[] {
  return presentTimelines(catalogue).filter((timeline) => timeline > 1 && !catalogue.wal[historyFileName(timeline)]);
}

/** Which timeline's file holds segment numbers from `fromSeg` up to (excluding) `toSeg` when restoring onto a timeline. */
interface PathStep {
  timeline: number;
  fromSeg: bigint;
  toSeg?: bigint;
  /** the LSN where the restore leaves this timeline */
  leaveLsn?: bigint;
}

/**
 * How recovery onto `timeline` reads WAL: as PostgreSQL's
 * XLogFileReadAnyTLI does, each segment from the newest timeline on the
 * history that had begun by that segment (the segment holding a switch point
 * comes from the child). Unknown history: the timeline's own files only.
 */
function restorePath(catalogue: Catalogue, timeline: number, segSize: number): PathStep[] {
  const ancestors = ancestorsOf(catalogue, timeline) ?? [];
  const steps: PathStep[] = [];
  let fromSeg = 0n;
  for (const { parentTimeline, switchLsn } of ancestors) {
    const toSeg = segmentNumberOfLsn(switchLsn, segSize);
    steps.push({ timeline: parentTimeline, fromSeg, toSeg, leaveLsn: switchLsn });
    fromSeg = toSeg;
  }
  steps.push({ timeline, fromSeg });
  return steps;
}

/** How recoverableWindows judges backups. */
export interface WindowOptions {
  /**
   * Count backups not yet validated as if valid. For a catalogue built from
   * a listing, where nothing is validated; the pipeline's catalogue leaves it off.
   */
  includePending?: boolean;
}

function usableBackup(catalogue: Catalogue, backup: CatalogueBackup, options: WindowOptions): boolean {
  if (isPlaceholderBackup(backup)) return false;
  if (backup.state !== 'valid' && !(options.includePending && backup.state === 'pending')) return false;
  return catalogue.systemIdentifier === undefined || backup.systemIdentifier === catalogue.systemIdentifier;
}

function lsnOrUndefined(text: string): bigint | undefined {
  try {
    return parseLsn(text);
  } catch {
    return undefined;
  }
}

/** Index of the piece holding `segNo` in an ascending list, or -1. */
function indexOf(list: readonly TimelinePiece[], segNo: bigint): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segNo < list[mid].from) hi = mid - 1;
    else if (segNo > list[mid].to) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/**
 * The segments of the catalogue a restore onto `timeline` reads, in WAL
 * order: its ancestors' before each fork its history names, then its own.
 * Corrupt segments are left out (they cannot be replayed); holes are not
 * marked (compare segment numbers). Runs are expanded segment by segment
 * (entryInRun: a folded segment's records are its run's that fall in it):
 * for small catalogues and tests; restorePathPieces scales.
 */
export function restorePathSegments(catalogue: Catalogue, timeline: number): TimelineSegment[] {
  const segSize = catalogueSegmentSize(catalogue);
  const pieces = timelinePieces(catalogue);
  const path: TimelineSegment[] = [];
  for (const step of restorePath(catalogue, timeline, segSize)) {
    for (const p of pieces.get(step.timeline) ?? []) {
      if (p.state === 'corrupt') continue;
      const from = p.from > step.fromSeg ? p.from : step.fromSeg;
      const to = step.toSeg === undefined || p.to < step.toSeg ? p.to : step.toSeg - 1n;
      if (p.entry) {
        if (from <= to) path.push({ segNo: p.from, entry: p.entry });
      } else for (let segNo = from; segNo <= to; segNo++) path.push({ segNo, entry: entryInRun(p.run!, segNo, segSize) });
    }
  }
  return path;
}

/** The part of `p` from `from` to `to`, which lie within it. */
function clip(p: TimelinePiece, from: bigint, to: bigint, timeline: number, segSize: number): TimelinePiece {
  if (from === p.from && to === p.to) return p;
  return {
    ...p,
    from,
    to,
    firstName: walSegmentName(timeline, from, segSize),
    lastName: walSegmentName(timeline, to, segSize),
    firstCreated: createdWithin(p.run!, from, segSize),
    lastCreated: createdWithin(p.run!, to, segSize),
  };
}

/** The pieces a restore onto `timeline` reads along `steps`, in WAL order, corrupt ones left out, each clipped to its step. */
function pathPieces(steps: readonly PathStep[], pieces: Map<number, TimelinePiece[]>, segSize: number): TimelinePiece[] {
  const path: TimelinePiece[] = [];
  for (const step of steps) {
    for (const p of pieces.get(step.timeline) ?? []) {
      if (p.state === 'corrupt') continue;
      const from = p.from > step.fromSeg ? p.from : step.fromSeg;
      const to = step.toSeg === undefined || p.to < step.toSeg ? p.to : step.toSeg - 1n;
      if (from <= to) path.push(clip(p, from, to, step.timeline, segSize));
    }
  }
  return path;
}

/**
 * restorePathSegments piece by piece: what a restore onto `timeline` reads,
 * in WAL order, as runs (or parts of runs) and single entries, so its cost
 * follows the runs, not the segments. A part of a run keeps the whole `run`;
 * its `from`..`to` say which segments of it are read.
 */
export function restorePathPieces(catalogue: Catalogue, timeline: number): TimelinePiece[] {
  const segSize = catalogueSegmentSize(catalogue);
  return pathPieces(restorePath(catalogue, timeline, segSize), timelinePieces(catalogue), segSize);
}

function windowOf(catalogue: Catalogue, timeline: number, pieces: Map<number, TimelinePiece[]>, segSize: number, options: WindowOptions): TimelineWindow {
  const steps = restorePath(catalogue, timeline, segSize);
  // The segments a restore onto this timeline reads, in order; corrupt ones
  // cannot be replayed, so they break the run like missing ones.
  const path = pathPieces(steps, pieces, segSize);
  const runEnd = new Array<number>(path.length);
  for (const [i, j] of runs(path)) for (let k = i; k <= j; k++) runEnd[k] = j;
  const pendingBefore = [0];
  for (const p of path) pendingBefore.push(pendingBefore.at(-1)! + (p.state === 'pending' ? pieceLength(p) : 0));

  const candidates: { backup: CatalogueBackup; stop: bigint }[] = [];
  for (const backup of Object.values(catalogue.backups)) {
    if (!usableBackup(catalogue, backup, options)) continue;
    const step = steps.find((s) => s.timeline === backup.timeline);
    const stop = lsnOrUndefined(backup.stopLsn);
    // A backup on an ancestor counts only if it ended before the fork away from it.
    if (!step || stop === undefined || (step.leaveLsn !== undefined && stop > step.leaveLsn)) continue;
    candidates.push({ backup, stop });
  }
  candidates.sort((a, b) => (a.stop < b.stop ? -1 : a.stop > b.stop ? 1 : a.backup.name < b.backup.name ? -1 : 1));

  const byRun = new Map<number, RecoverableSpan>();
  for (const { backup } of candidates) {
    let startSeg: bigint;
    let stopSeg: bigint;
    try {
      startSeg = parseWalSegmentName(backup.startWalSegment, segSize).segNo;
      stopSeg = parseWalSegmentName(backup.stopWalSegment, segSize).segNo;
    } catch {
      continue;
    }
    const first = indexOf(path, startSeg);
    if (first < 0) continue;
    const last = runEnd[first];
    if (path[last].to < stopSeg || byRun.has(last)) continue;
    const endLsn = (path[last].to + 1n) * BigInt(segSize);
    // Pending segments from the backup's start segment on (not the whole first piece).
    const skipped = path[first].state === 'pending' ? Number(startSeg - path[first].from) : 0;
    byRun.set(last, {
      from: { backup: backup.name, lsn: backup.stopLsn, time: backup.stopTime },
      // The last segment can have been archived before the backup recorded
      // its stop (pg_backup_stop waits for it): the span never ends before it starts.
      to: { lsn: formatLsn(endLsn > MAX_LSN ? MAX_LSN : endLsn), time: laterTime(path[last].lastCreated, backup.stopTime), segment: path[last].lastName },
      unvalidatedSegments: pendingBefore[last + 1] - pendingBefore[first] - skipped,
    });
  }
  const spans = [...byRun].sort(([a], [b]) => a - b).map(([, span]) => span);
  const newest = pieces.get(timeline)?.at(-1);
  const window: TimelineWindow = { timeline, spans };
  if (spans.length > 0) {
    window.earliest = spans[0].from;
    window.latest = spans.at(-1)!.to;
  }
  if (newest) window.newestWal = { name: newest.lastName, created: newest.lastCreated };
  return window;
}

/**
 * The recoverable window of every timeline with WAL or a backup, ascending.
 * A span starts at the stop of a valid backup whose WAL, from its start
 * segment through its stop segment, is present and not corrupt; it ends at
 * the end of the last segment of the unbroken run from that start segment.
 * Restoring onto a timeline after a fork reads its ancestors' segments before
 * the switch points its `.history` names, so a backup taken on an ancestor
 * before the fork counts for it; without a readable history only the
 * timeline's own backups and segments count. Backups of another cluster than
 * the catalogue's are ignored, and so are backups not validated unless
 * `options.includePending`.
 */
export function recoverableWindows(catalogue: Catalogue, options: WindowOptions = {}): TimelineWindow[] {
  const segSize = catalogueSegmentSize(catalogue);
  const pieces = timelinePieces(catalogue);
  const timelines = new Set([...pieces.keys(), ...presentTimelines(catalogue)]);
  return [...timelines].sort((a, b) => a - b).map((timeline) => windowOf(catalogue, timeline, pieces, segSize, options));
}

function laterTime(a: string, b: string): string {
  return compareTimes(a, b) >= 0 ? a : b;
}
