/**
 * Checks of one WAL record, as PostgreSQL's xlogreader makes them: the
 * header (ValidXLogRecordHeader), the layout of its header region
 * (DecodeXLogRecord's block headers and data header, whose lengths must add
 * up to the record's), and what the walker reads from the main data of
 * transaction-end and restore-point records. Messages follow PostgreSQL's.
 */
import { formatLsn } from '../lsn.ts';
import {
  BKPBLOCK_HAS_DATA,
  BKPBLOCK_HAS_IMAGE,
  BKPBLOCK_SAME_REL,
  BKPIMAGE_HAS_HOLE,
  type ByteReader,
  MAX_RECORD_LENGTH,
  RECORD_HEADER_SIZE,
  RESTORE_POINT_SIZE,
  RM_MAX_BUILTIN_ID,
  RM_MIN_CUSTOM_ID,
  RM_XACT_ID,
  RM_XLOG_ID,
  XLOG_RESTORE_POINT,
  XLOG_SWITCH,
  XLOG_XACT_ABORT,
  XLOG_XACT_ABORT_PREPARED,
  XLOG_XACT_COMMIT,
  XLOG_XACT_COMMIT_PREPARED,
  XLOG_XACT_OPMASK,
  XLR_BLOCK_ID_DATA_LONG,
  XLR_BLOCK_ID_DATA_SHORT,
  XLR_BLOCK_ID_ORIGIN,
  XLR_BLOCK_ID_TOPLEVEL_XID,
  XLR_MAX_BLOCK_ID,
  XLR_RMGR_INFO_MASK,
} from './format.ts';

/** The fixed header of a record (XLogRecord). */
export interface RecordHeader {
  totalLength: number;
  xid: number;
  prev: bigint;
  info: number;
  rmid: number;
  crc: number;
}

/** Read XLogRecord from the first RECORD_HEADER_SIZE bytes of `buf` at `at`. */
export function readRecordHeader(buf: Buffer, at: number, r: ByteReader): RecordHeader {
  return {
    totalLength: r.u32(buf, at),
    xid: r.u32(buf, at + 4),
    prev: r.u64(buf, at + 8),
    info: buf[at + 16],
    rmid: buf[at + 17],
    // Stored so that its bytes read little-endian give the CRC on either byte order (FIN_CRC32C swaps on big-endian).
    crc: buf.readUInt32LE(at + 20),
  };
}

/**
 * The problem with a record's length, before its header is read whole
 * (xl_tot_len always lies on the record's first page); undefined when
 * plausible. A length of 0 is where written WAL ends.
 */
export function checkRecordLength(totalLength: number, lsn: bigint): string | undefined {
  if (totalLength < RECORD_HEADER_SIZE) return `invalid record length at ${formatLsn(lsn)}: wanted ${RECORD_HEADER_SIZE}, got ${totalLength}`;
  if (totalLength > MAX_RECORD_LENGTH) return `record length ${totalLength} at ${formatLsn(lsn)} too long`;
  return undefined;
}

/**
 * ValidXLogRecordHeader: the resource manager exists and `xl_prev` points at
 * the previous record (`prev`), or, for the first record read (`prev`
 * undefined), before this one. `customRmgrs`: PostgreSQL 15 and later.
 */
export function checkRecordHeader(h: RecordHeader, lsn: bigint, prev: bigint | undefined, customRmgrs: boolean): string | undefined {
  const length = checkRecordLength(h.totalLength, lsn);
  if (length) return length;
  if (!(h.rmid <= RM_MAX_BUILTIN_ID || (customRmgrs && h.rmid >= RM_MIN_CUSTOM_ID))) return `invalid resource manager ID ${h.rmid} at ${formatLsn(lsn)}`;
  if (prev === undefined ? !(h.prev < lsn) : h.prev !== prev) {
    return `record with incorrect prev-link ${formatLsn(h.prev)} at ${formatLsn(lsn)}`;
  }
  return undefined;
}

/** Where a record's main data lies, from the start of the record. */
export interface RecordLayout {
  mainOffset: number;
  mainLength: number;
}

/**
 * Walk the header region of a record as DecodeXLogRecord does, from `head`
 * (the record's first bytes: at least its header region, or all of it).
 * Returns the main data's place, or the problem: a block id out of order or
 * unknown, flags that contradict lengths, or lengths that do not add up to
 * xl_tot_len. Checks that need the server's data page size (which the WAL
 * does not record) are left out; the record's CRC covers those bytes.
 */
export function decodeRecordLayout(head: Buffer, totalLength: number, lsn: bigint, r: ByteReader, compressedBits: number): RecordLayout | string {
  // Formatted only for a problem: this runs for every record.
  const short = () => `record with invalid length at ${formatLsn(lsn)}`;
  let pos = RECORD_HEADER_SIZE;
  let remaining = totalLength - RECORD_HEADER_SIZE;
  let dataTotal = 0;
  let maxBlockId = -1;
  let haveRel = false;
  let mainLength = 0;
  // COPY_HEADER_FIELD: each field must fit in what the record has left (and
  // in `head`, which holds more than any valid header region).
  const take = (n: number): number | undefined => {
    if (remaining < n || pos + n > head.length) return undefined;
    const start = pos;
    pos += n;
    remaining -= n;
    return start;
  };
  while (remaining > dataTotal) {
    const idAt = take(1);
    if (idAt === undefined) return short();
    const blockId = head[idAt];
    if (blockId === XLR_BLOCK_ID_DATA_SHORT) {
      const f = take(1);
      if (f === undefined) return short();
      mainLength = head[f];
      dataTotal += mainLength;
      break;
    } else if (blockId === XLR_BLOCK_ID_DATA_LONG) {
      const f = take(4);
      if (f === undefined) return short();
      mainLength = r.u32(head, f);
      dataTotal += mainLength;
      break;
    } else if (blockId === XLR_BLOCK_ID_ORIGIN) {
      if (take(2) === undefined) return short();
    } else if (blockId === XLR_BLOCK_ID_TOPLEVEL_XID) {
      if (take(4) === undefined) return short();
    } else if (blockId <= XLR_MAX_BLOCK_ID) {
      if (blockId <= maxBlockId) return `out-of-order block_id ${blockId} at ${formatLsn(lsn)}`;
      maxBlockId = blockId;
      const f = take(3);
      if (f === undefined) return short();
      const forkFlags = head[f];
      const dataLength = r.u16(head, f + 1);
      const hasData = (forkFlags & BKPBLOCK_HAS_DATA) !== 0;
      if (hasData && dataLength === 0) return `BKPBLOCK_HAS_DATA set, but no data included at ${formatLsn(lsn)}`;
      if (!hasData && dataLength !== 0) return `BKPBLOCK_HAS_DATA not set, but data length is ${dataLength} at ${formatLsn(lsn)}`;
      dataTotal += dataLength;
      if (forkFlags & BKPBLOCK_HAS_IMAGE) {
        const img = take(5);
        if (img === undefined) return short();
        const imageLength = r.u16(head, img);
        const holeOffset = r.u16(head, img + 2);
        const info = head[img + 4];
        const hasHole = (info & BKPIMAGE_HAS_HOLE) !== 0;
        let holeLength: number | undefined;
        if (hasHole && (info & compressedBits) !== 0) {
          const hole = take(2);
          if (hole === undefined) return short();
          holeLength = r.u16(head, hole);
        }
        // An uncompressed image's hole length is BLCKSZ minus its length; BLCKSZ is not in the WAL, so that part is left to the CRC.
        if (hasHole && (holeOffset === 0 || holeLength === 0))
          return `BKPIMAGE_HAS_HOLE set, but hole offset ${holeOffset} length ${holeLength ?? '?'} block image length ${imageLength} at ${formatLsn(lsn)}`;
        if (!hasHole && holeOffset !== 0) return `BKPIMAGE_HAS_HOLE not set, but hole offset ${holeOffset} length 0 at ${formatLsn(lsn)}`;
        dataTotal += imageLength;
      }
      if (!(forkFlags & BKPBLOCK_SAME_REL)) {
        if (take(12) === undefined) return short();
        haveRel = true;
      } else if (!haveRel) {
        return `BKPBLOCK_SAME_REL set but no previous rel at ${formatLsn(lsn)}`;
      }
      if (take(4) === undefined) return short();
    } else {
      return `invalid block_id ${blockId} at ${formatLsn(lsn)}`;
    }
  }
  if (remaining !== dataTotal) return short();
  return { mainOffset: totalLength - mainLength, mainLength };
}

/** What a record says that the walker keeps. */
export type RecordEvent =
  | { kind: 'xact-end'; op: 'commit' | 'abort' | 'commit-prepared' | 'abort-prepared'; time: bigint }
  | { kind: 'restore-point'; time: bigint; name: string }
  | { kind: 'switch' };

/** How many bytes of main data `eventOf` needs for a record of this resource manager and info. */
export function mainDataWanted(rmid: number, info: number): number {
  if (rmid === RM_XACT_ID && xactOp(info) !== undefined) return 8;
  if (rmid === RM_XLOG_ID && (info & XLR_RMGR_INFO_MASK) === XLOG_RESTORE_POINT) return RESTORE_POINT_SIZE;
  return 0;
}

function xactOp(info: number): 'commit' | 'abort' | 'commit-prepared' | 'abort-prepared' | undefined {
  switch (info & XLOG_XACT_OPMASK) {
    case XLOG_XACT_COMMIT:
      return 'commit';
    case XLOG_XACT_ABORT:
      return 'abort';
    case XLOG_XACT_COMMIT_PREPARED:
      return 'commit-prepared';
    case XLOG_XACT_ABORT_PREPARED:
      return 'abort-prepared';
    default:
      return undefined;
  }
}

/**
 * The transaction end (xact_time, first in xl_xact_commit and
 * xl_xact_abort) or restore point (xl_restore_point) a record carries, from
 * the first `mainDataWanted` bytes of its main data; undefined for other
 * records. Returns a problem string when the main data is too short.
 */
export function eventOf(rmid: number, info: number, main: Buffer, mainLength: number, lsn: bigint, r: ByteReader): RecordEvent | string | undefined {
  if (rmid === RM_XACT_ID) {
    const op = xactOp(info);
    if (op === undefined) return undefined;
    if (mainLength < 8 || main.length < 8) return `transaction record at ${formatLsn(lsn)} has ${mainLength} bytes of data, too few for its time`;
    return { kind: 'xact-end', op, time: r.i64(main, 0) };
  }
  if (rmid === RM_XLOG_ID) {
    const op = info & XLR_RMGR_INFO_MASK;
    if (op === XLOG_SWITCH) return { kind: 'switch' };
    if (op !== XLOG_RESTORE_POINT) return undefined;
    if (mainLength < RESTORE_POINT_SIZE || main.length < RESTORE_POINT_SIZE)
      return `restore point record at ${formatLsn(lsn)} has ${mainLength} bytes of data, not ${RESTORE_POINT_SIZE}`;
    const nameBytes = main.subarray(8, RESTORE_POINT_SIZE);
    const end = nameBytes.indexOf(0);
    return { kind: 'restore-point', time: r.i64(main, 0), name: nameBytes.subarray(0, end < 0 ? nameBytes.length : end).toString('utf8') };
  }
  return undefined;
}
