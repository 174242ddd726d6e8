/**
 * Where recovery can stop, from what validation read in the records of each
 * segment (CatalogueWalEntry.records): the last transaction end archived in
 * a timeline's window, which a time target must not pass (recovery to a time
 * stops at the first transaction end after it; with none, archive recovery
 * runs out of WAL and PostgreSQL refuses to start), and the named restore
 * points it can stop at. Pure functions of the catalogue.
 */
import { parseLsn } from '../wal/lsn.ts';
import { parseWalSegmentName } from '../wal/name.ts';
import { catalogueSegmentSize, recoverableWindows, restorePathSegments, type TimelineSegment, type TimelineWindow, type WindowOptions } from './derive.ts';
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

/** Segments of `path` from the segment named `first` through the one named `last` (by number). */
function between(path: readonly TimelineSegment[], first: string, last: string, segSize: number): TimelineSegment[] {
  let from: bigint;
  let to: bigint;
  try {
    from = parseWalSegmentName(first, segSize).segNo;
    to = parseWalSegmentName(last, segSize).segNo;
  } catch {
    return [];
  }
  return path.filter((s) => s.segNo >= from && s.segNo <= to);
}

const read = (s: TimelineSegment) => s.entry.state === 'valid' && s.entry.records !== undefined;

/** What the records of `window`'s segments say (see WindowRecords). */
export function windowRecords(catalogue: Catalogue, window: TimelineWindow): WindowRecords {
  const segSize = catalogueSegmentSize(catalogue);
  const path = restorePathSegments(catalogue, window.timeline);
  const restorePoints: NamedRestorePoint[] = [];
  let complete = window.spans.length > 0;
  let lastCommit: (LastCommit & { micros: bigint; index: number }) | null = null;
  let lastSpan: TimelineSegment[] = [];
  for (const span of window.spans) {
    const backup = catalogue.backups[span.from.backup];
    const segments = backup ? between(path, backup.startWalSegment, span.to.segment, segSize) : [];
    if (segments.length === 0 || !segments.every(read)) complete = false;
    // Recovery cannot stop before the backup is consistent.
    const start = lsnOf(span.from.lsn) ?? 0n;
    for (const s of segments) {
      for (const p of s.entry.records?.restorePoints ?? []) {
        const at = lsnOf(p.lsn);
        if (at !== undefined && at >= start) restorePoints.push({ name: p.name, time: p.time, lsn: p.lsn, segment: s.entry.name });
      }
    }
    lastSpan = segments;
  }
  for (const [index, s] of lastSpan.entries()) {
    const r = s.entry.records;
    const micros = r?.lastXactTime === undefined ? undefined : isoMicros(r.lastXactTime);
    if (micros === undefined || (lastCommit && micros <= lastCommit.micros)) continue;
    lastCommit = { time: r!.lastXactTime!, lsn: r!.lastXactLsn ?? '', segment: s.entry.name, micros, index };
  }
  const certain = lastSpan.length > 0 && lastSpan.slice(lastCommit?.index ?? 0).every(read);
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
  return recoverableWindows(catalogue, options).filter((w) => w.spans.length > 0).map((w) => windowRecords(catalogue, w));
}
