/**
 * WAL file names and segment arithmetic, as PostgreSQL defines them in
 * xlog_internal.h. The segment size is always a parameter: a cluster chooses
 * it at initdb time (1 MiB to 1 GiB), so nothing here assumes 16 MiB.
 *
 * A segment name is 24 uppercase hex digits: timeline, then the segment
 * number split into "xlogid" (segNo / segmentsPerXLogId) and the segment
 * within it (segNo % segmentsPerXLogId), where an xlogid spans 4 GiB of WAL.
 */
import { InvalidInputError } from '../errors.ts';
import { assertValidLsn, MAX_LSN } from './lsn.ts';
import { quoteForMessage } from './quote.ts';

/** Smallest WAL segment size PostgreSQL accepts (1 MiB). */
export const MIN_SEGMENT_SIZE = 1024 * 1024;
/** Largest WAL segment size PostgreSQL accepts (1 GiB). */
export const MAX_SEGMENT_SIZE = 1024 * 1024 * 1024;
/** initdb's default WAL segment size (16 MiB); a default for callers, never assumed here. */
export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;
/** Largest timeline ID (TimeLineID is uint32; 0 is never used). */
export const MAX_TIMELINE = 0xffff_ffff;

const XLOG_ID_SPAN = 0x1_0000_0000n;
const SEGMENT_SIZE_HINT = 'WAL segment sizes are powers of two from 1 MiB to 1 GiB, as set by initdb --wal-segsize';

/** Whether `n` is a WAL segment size PostgreSQL accepts: a power of two from 1 MiB to 1 GiB. */
export function isValidSegmentSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_SEGMENT_SIZE && n <= MAX_SEGMENT_SIZE && (n & (n - 1)) === 0;
}

/** Whether `n` is a timeline ID PostgreSQL can assign: an integer from 1 to 2^32-1. */
export function isValidTimeline(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= MAX_TIMELINE;
}

function assertSegmentSize(segSize: number): void {
  if (!isValidSegmentSize(segSize)) throw new InvalidInputError(`wal segment size ${segSize} is invalid`, SEGMENT_SIZE_HINT);
}

function assertTimeline(timeline: number): void {
  if (!isValidTimeline(timeline)) throw new InvalidInputError(`timeline ${timeline} is out of range`, 'timeline IDs are integers from 1 to 4294967295');
}

/** Number of segments in one 4 GiB xlogid: the modulus of the name's last 8 digits. Throws on an invalid size. */
export function segmentsPerXLogId(segSize: number): bigint {
  assertSegmentSize(segSize);
  return XLOG_ID_SPAN / BigInt(segSize);
}

/** Largest segment number a 64-bit WAL space holds at this size. Throws on an invalid size. */
export function maxSegmentNumber(segSize: number): bigint {
  assertSegmentSize(segSize);
  return (MAX_LSN + 1n) / BigInt(segSize) - 1n;
}

function assertSegmentNumber(segNo: bigint, segSize: number): void {
  if (segNo < 0n || segNo > maxSegmentNumber(segSize)) {
    throw new InvalidInputError(
      `segment number ${segNo} is out of range for ${segSize}-byte segments`,
      'a segment number is an LSN divided by the segment size',
    );
  }
}

/** The segment holding the byte at `lsn` (PostgreSQL's XLByteToSeg). Throws on an invalid LSN or size. */
export function segmentNumberOfLsn(lsn: bigint, segSize: number): bigint {
  assertValidLsn(lsn);
  assertSegmentSize(segSize);
  return lsn / BigInt(segSize);
}

/**
 * The segment holding the byte just before `lsn` (PostgreSQL's XLByteToPrevSeg):
 * where WAL that ends at `lsn` was last written. This is the segment
 * pg_walfile_name() and pg_backup_stop() name for a stop LSN, which differs
 * from segmentNumberOfLsn when `lsn` sits exactly on a segment boundary.
 * Throws InvalidInputError for LSN 0/0, which ends no WAL.
 */
export function segmentNumberOfEndLsn(lsn: bigint, segSize: number): bigint {
  assertValidLsn(lsn);
  if (lsn === 0n) throw new InvalidInputError('lsn 0/0 ends no wal', 'pass the LSN just after the last byte of WAL');
  return segmentNumberOfLsn(lsn - 1n, segSize);
}

/** The LSN of the first byte of segment `segNo`. Throws when the segment is outside the 64-bit WAL space. */
export function segmentStartLsn(segNo: bigint, segSize: number): bigint {
  assertSegmentNumber(segNo, segSize);
  return segNo * BigInt(segSize);
}

function hex8(n: bigint | number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/**
 * The 24-hex-digit file name of segment `segNo` on `timeline`, exactly as
 * PostgreSQL's XLogFileName writes it. Throws InvalidInputError on an invalid
 * timeline, segment size or segment number.
 */
export function walSegmentName(timeline: number, segNo: bigint, segSize: number): string {
  assertTimeline(timeline);
  assertSegmentNumber(segNo, segSize);
  const perId = segmentsPerXLogId(segSize);
  return hex8(timeline) + hex8(segNo / perId) + hex8(segNo % perId);
}

/** A segment name taken apart. */
export interface WalSegmentId {
  timeline: number;
  segNo: bigint;
}

/**
 * Parse a 24-hex-digit segment name written for segments of `segSize` bytes.
 * Uppercase only, as PostgreSQL writes names. Throws InvalidInputError when the
 * name is malformed, names timeline 0, or its low part is not below
 * segmentsPerXLogId for this size (such a name cannot exist at this size).
 */
export function parseWalSegmentName(name: string, segSize: number): WalSegmentId {
  const perId = segmentsPerXLogId(segSize);
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m)
    throw new InvalidInputError(
      `${quoteForMessage(name)} is not a wal segment name`,
      'a segment name is 24 uppercase hex digits, e.g. 000000010000000000000003',
    );
  const timeline = Number.parseInt(m[1], 16);
  if (timeline === 0) throw new InvalidInputError(`wal segment name ${name} has timeline 0`, 'timelines start at 1; check the file name');
  const low = BigInt(`0x${m[3]}`);
  if (low >= perId) {
    throw new InvalidInputError(
      `wal segment name ${name} cannot exist with ${segSize}-byte segments`,
      `its last 8 digits must be below ${hex8(perId)}; check that the segment size matches the cluster's`,
    );
  }
  return { timeline, segNo: BigInt(`0x${m[2]}`) * perId + low };
}

/** The name of the segment after `name` on the same timeline. Throws on a malformed name or past the end of the WAL space. */
export function nextSegmentName(name: string, segSize: number): string {
  const { timeline, segNo } = parseWalSegmentName(name, segSize);
  return walSegmentName(timeline, segNo + 1n, segSize);
}

/**
 * The names of the segments on `timeline` that hold the WAL from `startLsn`
 * up to, not including, `endLsn`: from the segment of `startLsn` through the
 * segment of `endLsn - 1` (so a backup's start and stop LSNs give exactly the
 * segments from its start WAL file to its stop WAL file). Yields nothing when
 * the two are equal; throws InvalidInputError when `endLsn` is before `startLsn`.
 * Lazy, because a wide range on 1 MiB segments can be millions of names.
 */
export function* segmentRange(timeline: number, startLsn: bigint, endLsn: bigint, segSize: number): Generator<string, void, undefined> {
  assertTimeline(timeline);
  assertValidLsn(startLsn, 'start lsn');
  assertValidLsn(endLsn, 'end lsn');
  assertSegmentSize(segSize);
  if (endLsn < startLsn) throw new InvalidInputError(`end lsn ${endLsn} is before start lsn ${startLsn}`, 'pass the earlier LSN first');
  if (endLsn === startLsn) return;
  const last = segmentNumberOfEndLsn(endLsn, segSize);
  for (let segNo = segmentNumberOfLsn(startLsn, segSize); segNo <= last; segNo++) yield walSegmentName(timeline, segNo, segSize);
}

/** The timeline history file name PostgreSQL writes for `timeline`, e.g. `00000002.history`. */
export function historyFileName(timeline: number): string {
  assertTimeline(timeline);
  return `${hex8(timeline)}.history`;
}

/** What a file name from pg_wal (or the archive) is. */
export type WalFileName =
  | { kind: 'segment'; timeline: number; name: string }
  | { kind: 'partial'; timeline: number; segmentName: string }
  | { kind: 'history'; timeline: number }
  | { kind: 'backup'; timeline: number; segmentName: string; offset: number };

// With the smallest segment size (1 MiB) an xlogid holds 0x1000 segments, so
// no valid segment name at any size has a low part at or above that.
const MAX_SEGMENTS_PER_XLOG_ID = XLOG_ID_SPAN / BigInt(MIN_SEGMENT_SIZE);

function segmentTimeline(segmentName: string): number | undefined {
  const timeline = Number.parseInt(segmentName.slice(0, 8), 16);
  if (timeline === 0 || BigInt(`0x${segmentName.slice(16)}`) >= MAX_SEGMENTS_PER_XLOG_ID) return undefined;
  return timeline;
}

/**
 * Classify a file name the way PostgreSQL names WAL files: a segment
 * (`<24 hex>`), a partial segment left at a timeline switch (`<seg>.partial`),
 * a timeline history file (`<8 hex>.history`) or a backup history file
 * (`<seg>.<8 hex offset>.backup`). Returns undefined for anything else,
 * including lowercase hex, timeline 0 and segment names no segment size allows.
 * Does not know the segment size; parseWalSegmentName checks a name against it.
 */
export function classifyWalFileName(name: string): WalFileName | undefined {
  let m = /^[0-9A-F]{24}$/.exec(name);
  if (m) {
    const timeline = segmentTimeline(name);
    return timeline === undefined ? undefined : { kind: 'segment', timeline, name };
  }
  m = /^([0-9A-F]{24})\.partial$/.exec(name);
  if (m) {
    const timeline = segmentTimeline(m[1]);
    return timeline === undefined ? undefined : { kind: 'partial', timeline, segmentName: m[1] };
  }
  m = /^([0-9A-F]{8})\.history$/.exec(name);
  if (m) {
    const timeline = Number.parseInt(m[1], 16);
    return timeline === 0 ? undefined : { kind: 'history', timeline };
  }
  m = /^([0-9A-F]{24})\.([0-9A-F]{8})\.backup$/.exec(name);
  if (m) {
    const timeline = segmentTimeline(m[1]);
    return timeline === undefined ? undefined : { kind: 'backup', timeline, segmentName: m[1], offset: Number.parseInt(m[2], 16) };
  }
  return undefined;
}
