/**
 * Timeline history files (`<8 hex>.history`), which PostgreSQL writes when
 * recovery ends on a new timeline. Each line records one ancestor:
 *
 *   parentTLI <TAB> switchpoint <TAB> reason
 *
 * meaning "WAL of parentTLI, up to (not including) switchpoint, belongs to this
 * history; from switchpoint on, the next timeline takes over". Lines come
 * oldest ancestor first; `#` comments and blank lines are ignored.
 */
import { InvalidInputError } from '../errors.ts';
import { formatLsn, parseLsn } from './lsn.ts';
import { isValidTimeline } from './name.ts';
import { quoteForMessage } from './quote.ts';

/** One ancestor timeline in a history file. */
export interface TimelineHistoryEntry {
  parentTimeline: number;
  /** first LSN that no longer belongs to parentTimeline */
  switchLsn: bigint;
  /** PostgreSQL's free-text reason, e.g. `no recovery target specified` */
  reason: string;
}

// sscanf("%u\t%X/%X") in PostgreSQL's readTimeLineHistory treats the tab as
// any whitespace; the reason is whatever follows.
const LINE_PATTERN = /^\s*(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s+(.*?))?\s*$/;

/**
 * Parse the history file of `timeline`. Applies PostgreSQL's rules: parent
 * timelines strictly increasing and all below `timeline`; additionally the
 * switch points must not go backwards. Throws InvalidInputError naming the
 * line on anything malformed.
 */
export function parseHistoryFile(text: string, timeline: number): TimelineHistoryEntry[] {
  const where = `history file of timeline ${timeline}`;
  const hint = 'each line must read "parentTLI<TAB>switchpoint<TAB>reason" with increasing timelines; fetch the file again from pg_wal or the archive';
  if (!isValidTimeline(timeline)) throw new InvalidInputError(`timeline ${timeline} is out of range`, 'timeline IDs are integers from 1 to 4294967295');
  const entries: TimelineHistoryEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const bad = (what: string) => new InvalidInputError(`${where} line ${i + 1} ${what}: ${quoteForMessage(trimmed)}`, hint);
    const m = LINE_PATTERN.exec(line);
    if (!m) throw bad('is malformed');
    const parentTimeline = Number(m[1]);
    if (!isValidTimeline(parentTimeline)) throw bad('has an invalid timeline');
    const previous = entries.at(-1);
    if (previous && parentTimeline <= previous.parentTimeline) throw bad('does not increase the timeline');
    if (parentTimeline >= timeline) throw bad(`names a timeline not below ${timeline}`);
    const switchLsn = parseLsn(m[2]);
    if (previous && switchLsn < previous.switchLsn) throw bad('has a switch point before the previous one');
    entries.push({ parentTimeline, switchLsn, reason: m[3] ?? '' });
  }
  return entries;
}

/**
 * The timeline that WAL position `lsn` belongs to on the history of
 * `currentTimeline` described by `entries` (as parseHistoryFile returns them):
 * the first ancestor whose switch point is after `lsn`, else currentTimeline.
 * Mirrors PostgreSQL's tliOfPointInHistory: a switch point itself belongs to
 * the newer timeline.
 */
export function timelineOfLsn(entries: readonly TimelineHistoryEntry[], currentTimeline: number, lsn: bigint): number {
  for (const entry of entries) {
    if (lsn < entry.switchLsn) return entry.parentTimeline;
  }
  return currentTimeline;
}

/**
 * Write entries as PostgreSQL does: one `parent\tLSN\treason\n` line each,
 * with the blank line PostgreSQL inserts before each line it appends to a
 * copied parent history. parseHistoryFile(formatHistoryFile(e), t) returns e.
 */
export function formatHistoryFile(entries: readonly TimelineHistoryEntry[]): string {
  return entries.map((e) => `${e.parentTimeline}\t${formatLsn(e.switchLsn)}\t${e.reason}\n`).join('\n');
}
