/**
 * The text files PostgreSQL archives beside segments: timeline history files
 * (`<tli>.history`) and backup history files
 * (`<tli><segment>.<offset>.backup`, written by pg_backup_stop). Pure checks
 * of their decoded bytes; each throws InvalidInputError with a one-line
 * message naming the file.
 */
import { InvalidInputError } from '../errors.ts';
import { parseHistoryFile } from '../wal/history.ts';
import { formatLsn, parseLsn } from '../wal/lsn.ts';
import { isValidSegmentSize, parseWalSegmentName, segmentNumberOfLsn, type WalFileName } from '../wal/name.ts';

const damaged = 'the archived file is damaged or is not what its name says; archive it again from pg_wal if PostgreSQL still has it';

/** `bytes` as text: valid UTF-8 without NUL bytes, else InvalidInputError naming `name`. */
export function decodeText(bytes: Buffer, name: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidInputError(`${name} is not text: it is not valid utf-8`, damaged);
  }
  if (text.includes('\0')) throw new InvalidInputError(`${name} is not text: it holds NUL bytes`, damaged);
  return text;
}

/**
 * Check the history file of `timeline` (named `name`): it must parse as
 * PostgreSQL reads it and, as every timeline after the first has a parent,
 * list at least one ancestor. Returns what it says, for the catalogue:
 * `history`, its lines oldest ancestor first (CatalogueHistoryLine).
 */
export function checkHistoryText(text: string, timeline: number, name: string): Record<string, unknown> {
  let entries;
  try {
    entries = parseHistoryFile(text, timeline);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidInputError(`${name}: ${err.message}`, err.hint, { cause: err });
    throw err;
  }
  const last = entries.at(-1);
  if (!last) throw new InvalidInputError(`${name} lists no parent timeline`, damaged);
  return {
    kind: 'history',
    timeline,
    parents: entries.map((e) => e.parentTimeline),
    switchLsn: formatLsn(last.switchLsn),
    history: entries.map((e) => ({ parentTimeline: e.parentTimeline, switchLsn: formatLsn(e.switchLsn) })),
  };
}

const START = /^START WAL LOCATION: ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}) \(file ([0-9A-F]{24})\)$/m;
const STOP = /^STOP WAL LOCATION: ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}) \(file ([0-9A-F]{24})\)$/m;
const START_TIMELINE = /^START TIMELINE: (\d+)$/m;
const STOP_TIMELINE = /^STOP TIMELINE: (\d+)$/m;
const LABEL = /^LABEL: (.*)$/m;

/**
 * Check a backup history file against its name. PostgreSQL names it after
 * the backup's stop timeline, the segment number of its start LSN and the
 * LSN's offset in that segment, and writes `START WAL LOCATION: <lsn> (file
 * <start segment>)` first. So the file must hold that line, its segment
 * number must be the name's, the start and stop timelines (when present) must
 * match the start file and the name, and, when the segment size is known, the
 * LSN must fall in that segment at the name's offset. Returns what it says.
 */
export function checkBackupHistoryText(
  text: string,
  kind: Extract<WalFileName, { kind: 'backup' }>,
  name: string,
  segmentSize: number | undefined,
): Record<string, unknown> {
  const start = START.exec(text);
  if (!start) throw new InvalidInputError(`${name} has no START WAL LOCATION line`, damaged);
  const startLsn = parseLsn(start[1]);
  const startFile = start[2];
  const mismatch = (what: string) => new InvalidInputError(`${name} ${what}`, damaged);
  if (startFile.slice(8) !== kind.segmentName.slice(8)) throw mismatch(`starts in segment ${startFile}, which its name does not give`);
  const startTimeline = START_TIMELINE.exec(text);
  if (startTimeline && Number(startTimeline[1]) !== Number.parseInt(startFile.slice(0, 8), 16))
    throw mismatch(`gives start timeline ${startTimeline[1]}, but its start file is ${startFile}`);
  const stopTimeline = STOP_TIMELINE.exec(text);
  if (stopTimeline && Number(stopTimeline[1]) !== kind.timeline) throw mismatch(`gives stop timeline ${stopTimeline[1]}, but its name says ${kind.timeline}`);
  if (segmentSize !== undefined && isValidSegmentSize(segmentSize)) {
    const { segNo } = parseWalSegmentName(startFile, segmentSize);
    if (segmentNumberOfLsn(startLsn, segmentSize) !== segNo || Number(startLsn % BigInt(segmentSize)) !== kind.offset) {
      throw mismatch(`starts at ${formatLsn(startLsn)}, which is not offset ${kind.offset.toString(16).toUpperCase()} of ${startFile}`);
    }
  }
  const stop = STOP.exec(text);
  const details: Record<string, unknown> = { kind: 'backup', timeline: kind.timeline, startLsn: formatLsn(startLsn), startWalSegment: startFile };
  if (stop) {
    const stopLsn = parseLsn(stop[1]);
    if (stopLsn < startLsn) throw mismatch(`stops at ${formatLsn(stopLsn)}, before it starts`);
    details.stopLsn = formatLsn(stopLsn);
    details.stopWalSegment = stop[2];
  }
  const label = LABEL.exec(text);
  if (label) details.label = label[1];
  return details;
}
