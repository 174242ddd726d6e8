/**
 * Where recovery can stop, from what validation read in the records of each
 * segment (CatalogueWalEntry.records): the last transaction end archived in
 * a timeline's window, which a time target must not pass (recovery to a time
 * stops at the first transaction end after it; with none, archive recovery
 * runs out of WAL and PostgreSQL refuses to start), and the named restore
 * points it can stop at. Pure functions of the catalogue.
 */
import { parseLsn } from '../wal/lsn.ts';
import { parseWalSegmentName, segmentNumberOfLsn, walSegmentName } from '../wal/name.ts';
import { catalogueSegmentSize, recoverableWindows, restorePathPieces, type TimelinePiece, type TimelineWindow, type WindowOptions } from './derive.ts';
import type { Catalogue } from './types.ts';

/** The latest transaction end (commit or abort) in archived WAL. */
export interface LastCommit {
  /** its xact_time: ISO-8601 UTC with microseconds */
  time: string;
  /** LSN of its record */
  lsn: string;
  /** the segment holding it */
  segment: string;
}

/** A named restore point recovery can stop at (`--target-name`). */
export interface NamedRestorePoint {
  name: string;
  /** when it was created: ISO-8601 UTC with microseconds */
  time: string;
  lsn: string;
  segment: string;
}

/** What the records say about one timeline's window. */
export interface WindowRecords {
  timeline: number;
  /** the last transaction end in the window's last span; null when its records name none (or were not read) */
  lastCommit: LastCommit | null;
  /**
   * Whether every segment of the last span from lastCommit's on (all of
   * them when there is none) had its records read: when false a later
   * transaction end may be archived but not yet validated.
   */
  lastCommitCertain: boolean;
  /** named restore points inside the window's spans (at or after each span's backup stop), in WAL order */
  restorePoints: NamedRestorePoint[];
  /** whether every segment of every span had its records read (a restore point missing from the list is not archived) */
  complete: boolean;
}

/** ISO time with up to microseconds as microseconds since the epoch; undefined when it does not parse. */
export function isoMicros(iso: string): bigint | undefined {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/.exec(iso);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return Number.isNaN(ms) ? undefined : BigInt(ms) * 1000n + BigInt((m[2] ?? '').padEnd(6, '0'));
}

function lsnOf(text: string): bigint | undefined {
  try {
    return parseLsn(text);
  } catch {
    return undefined;
  }
}

/** What one piece of the restore path says: whether its records were read, and which of them lie in it. */
interface PieceRecords {
  read: boolean;
  /** the restore points in it, in WAL order, with the segment holding each */
  restorePoints: NamedRestorePoint[];
  /** its latest transaction end, when one lies in it */
  last?: LastCommit;
}

/**
 * The records of `piece` (a single entry, or segments `from`..`to` of a
 * run), as the per-segment entries of those segments would give them
 * (entryInRun): a run had its records read for every segment or none; a
 * restore point or transaction end lies in the segment holding its LSN.
 */
function pieceRecords(piece: TimelinePiece, segSize: number): PieceRecords {
  if (piece.entry) {
    const r = piece.entry.records;
    return {
      read: piece.entry.state === 'valid' && r !== undefined,
      restorePoints: (r?.restorePoints ?? []).map((p) => ({ name: p.name, time: p.time, lsn: p.lsn, segment: piece.entry!.name })),
      ...(r?.lastXactTime !== undefined ? { last: { time: r.lastXactTime, lsn: r.lastXactLsn ?? '', segment: piece.entry.name } } : {}),
    };
  }
  const r = piece.run?.records;
  if (!r) return { read: false, restorePoints: [] };
  const timeline = piece.run!.timeline;
  const segmentOf = (lsn: string | undefined): bigint | undefined => {
    const at = lsn === undefined ? undefined : lsnOf(lsn);
    return at === undefined ? undefined : segmentNumberOfLsn(at, segSize);
  };
  const inside = (seg: bigint | undefined): seg is bigint => seg !== undefined && seg >= piece.from && seg <= piece.to;
  const points = r.restorePoints.map((p) => ({ p, seg: segmentOf(p.lsn) })).filter((x): x is { p: typeof x.p; seg: bigint } => inside(x.seg));
  // Segment by segment, as the expanded path lists them (stable: a segment's own order kept).
  points.sort((a, b) => (a.seg < b.seg ? -1 : a.seg > b.seg ? 1 : 0));
  const lastSeg = r.lastXactTime === undefined ? undefined : segmentOf(r.lastXactLsn);
  return {
    read: true,
    restorePoints: points.map(({ p, seg }) => ({ name: p.name, time: p.time, lsn: p.lsn, segment: walSegmentName(timeline, seg, segSize) })),
    ...(inside(lastSeg) ? { last: { time: r.lastXactTime!, lsn: r.lastXactLsn ?? '', segment: walSegmentName(timeline, lastSeg, segSize) } } : {}),
  };
}

/** The parts of `path`'s pieces from segment `first` through segment `last` (by name; none when a name does not parse). */
function between(path: readonly TimelinePiece[], first: string, last: string, segSize: number): TimelinePiece[] {
  let from: bigint;
  let to: bigint;
  try {
    from = parseWalSegmentName(first, segSize).segNo;
    to = parseWalSegmentName(last, segSize).segNo;
  } catch {
    return [];
  }
  const out: TimelinePiece[] = [];
  for (const p of path) {
    if (p.to < from || p.from > to) continue;
    out.push(p.from >= from && p.to <= to ? p : { ...p, from: p.from > from ? p.from : from, to: p.to < to ? p.to : to });
  }
  return out;
}

/**
 * What the records of `window`'s segments say (see WindowRecords). Works on
 * the restore path's pieces (runs and single entries), so its cost follows
 * the catalogue's runs, not the archive's segments.
 */
export function windowRecords(catalogue: Catalogue, window: TimelineWindow): WindowRecords {
  const segSize = catalogueSegmentSize(catalogue);
  const path = restorePathPieces(catalogue, window.timeline);
  const restorePoints: NamedRestorePoint[] = [];
  let complete = window.spans.length > 0;
  let lastCommit: (LastCommit & { micros: bigint; index: number }) | null = null;
  let lastSpan: PieceRecords[] = [];
  for (const span of window.spans) {
    const backup = catalogue.backups[span.from.backup];
    const pieces = (backup ? between(path, backup.startWalSegment, span.to.segment, segSize) : []).map((p) => pieceRecords(p, segSize));
    if (pieces.length === 0 || !pieces.every((p) => p.read)) complete = false;
    // Recovery cannot stop before the backup is consistent.
    const start = lsnOf(span.from.lsn) ?? 0n;
    for (const piece of pieces) {
      for (const p of piece.restorePoints) {
        const at = lsnOf(p.lsn);
        if (at !== undefined && at >= start) restorePoints.push(p);
      }
    }
    lastSpan = pieces;
  }
  for (const [index, piece] of lastSpan.entries()) {
    const micros = piece.last === undefined ? undefined : isoMicros(piece.last.time);
    if (micros === undefined || (lastCommit && micros <= lastCommit.micros)) continue;
    lastCommit = { ...piece.last!, micros, index };
  }
  const certain = lastSpan.length > 0 && lastSpan.slice(lastCommit?.index ?? 0).every((p) => p.read);
  return {
    timeline: window.timeline,
    lastCommit: lastCommit && { time: lastCommit.time, lsn: lastCommit.lsn, segment: lastCommit.segment },
    lastCommitCertain: certain,
    restorePoints,
    complete,
  };
}

/** windowRecords of every timeline that has a window, ascending. */
export function restorableRecords(catalogue: Catalogue, options: WindowOptions = {}): WindowRecords[] {
  return recoverableWindows(catalogue, options)
    .filter((w) => w.spans.length > 0)
    .map((w) => windowRecords(catalogue, w));
}
