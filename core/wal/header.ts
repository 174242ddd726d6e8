/**
 * The long page header at the start of every WAL segment
 * (XLogLongPageHeaderData in PostgreSQL's access/xlog_internal.h):
 *
 *   offset  size  field
 *        0     2  xlp_magic        WAL format version
 *        2     2  xlp_info         flag bits; XLP_LONG_HEADER on a segment's first page
 *        4     4  xlp_tli          timeline of the first record on the page
 *        8     8  xlp_pageaddr     LSN of this page
 *       16     4  xlp_rem_len      bytes of a record continued from the previous page
 *       20     4  (padding: the short header is MAXALIGNed to 24)
 *       24     8  xlp_sysid        system identifier from pg_control
 *       32     4  xlp_seg_size     segment size, as a cross-check
 *       36     4  xlp_xlog_blcksz  WAL page size, as a cross-check
 *
 * PostgreSQL writes it in the server's native byte order; x86 and arm64 are
 * little-endian, and a big-endian file is recognised by its flag bits.
 */
import { InvalidInputError } from '../errors.ts';
import { formatLsn } from './lsn.ts';
import { classifyWalFileName, isValidSegmentSize, isValidTimeline, parseWalSegmentName, segmentStartLsn } from './name.ts';
import { quoteForMessage } from './quote.ts';

/** Bytes of XLogLongPageHeaderData (SizeOfXLogLongPHD on every supported platform). */
export const LONG_PAGE_HEADER_SIZE = 40;
/** xlp_info bit: the page carries the long header (set on the first page of a segment). */
export const XLP_LONG_HEADER = 0x0002;
/** Every xlp_info bit PostgreSQL defines (XLP_ALL_FLAGS since the 2021 overwrite-contrecord fix). */
export const XLP_ALL_FLAGS = 0x000f;

// XLOG_PAGE_MAGIC of each release, from src/include/access/xlog_internal.h
// on the REL_<n>_STABLE branches. A new major version bumps it whenever the
// WAL format changes, so it identifies the server that wrote the file.
const MAJOR_BY_MAGIC: ReadonlyMap<number, number> = new Map([
  [0xd097, 10],
  [0xd098, 11],
  [0xd101, 12],
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
  [0xd118, 18],
]);

/** The newest magic in MAJOR_BY_MAGIC. */
export const NEWEST_KNOWN_WAL_MAGIC = 0xd118;
/** The major version that writes NEWEST_KNOWN_WAL_MAGIC. */
export const NEWEST_KNOWN_PG_MAJOR = 18;
// A release bumps the magic by a few steps, so a value this far past the
// newest known one is a later release for decades; beyond it, not WAL.
const NEWER_MAGIC_SPAN = 0x100;

/**
 * Whether `magic` is past the newest this gcwal knows (a later PostgreSQL):
 * its long page header has kept the same layout since 9.x, so such a segment
 * can still be checked and archived. An unknown magic below the newest is
 * never a release and stays unknown.
 */
export function isNewerWalMagic(magic: number): boolean {
  return magic > NEWEST_KNOWN_WAL_MAGIC && magic < NEWEST_KNOWN_WAL_MAGIC + NEWER_MAGIC_SPAN;
}

/** The fields of a segment's long page header, as read. */
export interface LongPageHeader {
  /** xlp_magic: WAL format version, see pgMajorOfWalMagic */
  magic: number;
  /** xlp_info flag bits */
  info: number;
  /** xlp_tli: timeline of the first record on the page */
  timeline: number;
  /** xlp_pageaddr: LSN of the segment's first byte */
  pageAddress: bigint;
  /** xlp_rem_len: bytes of a record continued from the previous segment */
  remLen: number;
  /** xlp_sysid as a decimal string (it exceeds 2^53), as pg_controldata prints it */
  systemIdentifier: string;
  /** xlp_seg_size */
  segmentSize: number;
  /** xlp_xlog_blcksz: WAL page size */
  blockSize: number;
  /** byte order the server wrote the file in */
  byteOrder: 'little' | 'big';
}

/**
 * Read the long page header from the first bytes of a WAL segment (at least
 * LONG_PAGE_HEADER_SIZE of them). Only checks that it is a long header:
 * throws InvalidInputError ("not a WAL segment") when `buf` is too short or
 * xlp_info, read in either byte order, is not a flag byte with
 * XLP_LONG_HEADER set. `what` names the source in messages (the file name).
 * Use checkSegmentHeader to validate the values.
 */
export function parseLongPageHeader(buf: Buffer, what = 'file'): LongPageHeader {
  const hint = 'pass a WAL segment file from pg_wal';
  if (buf.length < LONG_PAGE_HEADER_SIZE) {
    throw new InvalidInputError(`not a WAL segment: ${what} has ${buf.length} bytes, fewer than the ${LONG_PAGE_HEADER_SIZE}-byte page header`, hint);
  }
  // xlp_info of a long header is a few flag bits with XLP_LONG_HEADER among
  // them, so it reads as 0x000N in the writer's byte order and as 0x0N00 in
  // the other; text or other binary data rarely fits either.
  const isLongInfo = (info: number) => (info & 0xff00) === 0 && (info & XLP_LONG_HEADER) !== 0;
  let byteOrder: 'little' | 'big';
  if (isLongInfo(buf.readUInt16LE(2))) byteOrder = 'little';
  else if (isLongInfo(buf.readUInt16BE(2))) byteOrder = 'big';
  else throw new InvalidInputError(`not a WAL segment: ${what} does not start with a long page header`, hint);
  const le = byteOrder === 'little';
  const u16 = (at: number) => (le ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const u64 = (at: number) => (le ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at));
  return {
    magic: u16(0),
    info: u16(2),
    timeline: u32(4),
    pageAddress: u64(8),
    remLen: u32(16),
    systemIdentifier: u64(24).toString(),
    segmentSize: u32(32),
    blockSize: u32(36),
    byteOrder,
  };
}

/**
 * The warning for a segment whose magic is newer than this gcwal knows (one
 * line): what was checked, and that gcwal should be upgraded.
 */
export function newerWalMagicWarning(magic: number): string {
  return `WAL page magic ${hex(magic, 4)} is newer than PostgreSQL ${NEWEST_KNOWN_PG_MAJOR}'s, the newest this gcwal knows; its segments are archived because their system identifier, segment size and page size check out, but upgrade gcwal to a release that supports this PostgreSQL`;
}

/** The PostgreSQL major version (10 to 18) that writes WAL with this page magic, or undefined. */
export function pgMajorOfWalMagic(magic: number): number | undefined {
  return MAJOR_BY_MAGIC.get(magic);
}

/** What a checked header says about its segment. */
export interface SegmentIdentity {
  /** timeline from the file name (the header may carry an earlier one, see checkSegmentHeader) */
  timeline: number;
  /** xlp_tli from the header */
  headerTimeline: number;
  segNo: bigint;
  segmentSize: number;
  blockSize: number;
  /** decimal string */
  systemIdentifier: string;
  /** PostgreSQL major version that wrote the segment; undefined for a release newer than this gcwal knows */
  pgMajor: number | undefined;
  /** set when the magic is newer than any this gcwal knows (see isNewerWalMagic): warn, the segment is still WAL */
  newerWalMagic?: true;
}

// PostgreSQL's configure accepts WAL page sizes of 1 to 64 kB, powers of two.
function isValidBlockSize(n: number): boolean {
  return n >= 1024 && n <= 65536 && (n & (n - 1)) === 0;
}

function hex(n: number, digits: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;
}

/**
 * Check a parsed header against the file name it was found under (a segment
 * name, or a segment name with `.partial`), as PostgreSQL's WAL reader would.
 * Throws InvalidInputError with a one-line message and a hint when:
 * - the name is not a segment or partial segment name;
 * - the magic is not that of PostgreSQL 10 to 18, nor newer than 18's
 *   (isNewerWalMagic: then pgMajor is undefined and newerWalMagic set, and
 *   every check below still applies but the flags one, since a later
 *   release may define more flags);
 * - xlp_info has bits PostgreSQL does not define;
 * - the segment size is not a power of two from 1 MiB to 1 GiB, or the WAL
 *   page size not one from 1 to 64 kB;
 * - the name is impossible at the header's segment size;
 * - the page address is not the first byte of the segment the name gives
 *   (e.g. a recycled segment still holding an older segment's WAL);
 * - the header's timeline is 0 or after the name's. It may be earlier: at a
 *   timeline switch in mid-segment PostgreSQL starts the new timeline's first
 *   segment as a copy of the old one, old header included (XLogInitNewTimeline);
 *   it is never later, since a child timeline always has a higher ID.
 * Does not compare the system identifier: the caller knows which cluster it expects.
 */
export function checkSegmentHeader(header: LongPageHeader, fileName: string): SegmentIdentity {
  const kind = classifyWalFileName(fileName);
  if (kind?.kind !== 'segment' && kind?.kind !== 'partial') {
    throw new InvalidInputError(
      `${quoteForMessage(fileName)} is not a WAL segment file name`,
      'name the file as PostgreSQL does, e.g. 000000010000000000000003 or 000000010000000000000003.partial',
    );
  }
  const segmentName = kind.kind === 'segment' ? kind.name : kind.segmentName;
  const pgMajor = pgMajorOfWalMagic(header.magic);
  const newer = pgMajor === undefined && isNewerWalMagic(header.magic);
  if (pgMajor === undefined && !newer) {
    throw new InvalidInputError(
      `${fileName} has unknown WAL page magic ${hex(header.magic, 4)}`,
      `gcwal reads WAL from PostgreSQL 10 to ${NEWEST_KNOWN_PG_MAJOR} and later; check the file is a WAL segment from a supported server`,
    );
  }
  const damaged = 'the file is damaged or is not WAL; check it came from pg_wal';
  if (!newer && header.info & ~XLP_ALL_FLAGS) throw new InvalidInputError(`${fileName} has undefined page header flags ${hex(header.info, 4)}`, damaged);
  if (!isValidSegmentSize(header.segmentSize)) throw new InvalidInputError(`${fileName} header gives invalid segment size ${header.segmentSize}`, damaged);
  if (!isValidBlockSize(header.blockSize)) throw new InvalidInputError(`${fileName} header gives invalid WAL page size ${header.blockSize}`, damaged);
  const { timeline, segNo } = parseWalSegmentName(segmentName, header.segmentSize);
  const expected = segmentStartLsn(segNo, header.segmentSize);
  if (header.pageAddress !== expected) {
    throw new InvalidInputError(
      `${fileName} holds WAL from ${formatLsn(header.pageAddress)}, but its name places it at ${formatLsn(expected)}`,
      'the file is a recycled or renamed segment holding other WAL; archive the file PostgreSQL asked for',
    );
  }
  if (!isValidTimeline(header.timeline) || header.timeline > timeline) {
    throw new InvalidInputError(
      `${fileName} holds WAL of timeline ${header.timeline}, but its name says timeline ${timeline}`,
      'a segment can carry an earlier timeline than its name, never a later one; check the file was not renamed',
    );
  }
  const identity: SegmentIdentity = {
    timeline,
    headerTimeline: header.timeline,
    segNo,
    segmentSize: header.segmentSize,
    blockSize: header.blockSize,
    systemIdentifier: header.systemIdentifier,
    pgMajor,
  };
  if (newer) identity.newerWalMagic = true;
  return identity;
}
