/**
 * The WAL record format as PostgreSQL 10 to 18 write it (access/xlogrecord.h,
 * access/xlog_internal.h, the resource managers' headers): the constants the
 * record walker needs, and readers in the writer's byte order.
 */

/** Bytes of XLogPageHeaderData, MAXALIGNed (SizeOfXLogShortPHD). */
export const SHORT_PAGE_HEADER_SIZE = 24;
/** Bytes of XLogRecord (SizeOfXLogRecord): tot_len, xid, prev, info, rmid, 2 pad, crc. */
export const RECORD_HEADER_SIZE = 24;
/** Offset of xl_crc in XLogRecord: the CRC covers the header up to here. */
export const RECORD_CRC_OFFSET = 20;
/** Largest record PostgreSQL can read (MaxAllocSize, 1 GB - 1). */
export const MAX_RECORD_LENGTH = 0x3fffffff;

/** xlp_info: the page begins with the rest of a record started on an earlier page. */
export const XLP_FIRST_IS_CONTRECORD = 0x0001;
/** xlp_info: a record left incomplete by a crash was abandoned here (CreateOverwriteContrecordRecord). */
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;

/** Resource managers the walker reads records of. */
export const RM_XLOG_ID = 0;
export const RM_XACT_ID = 1;
/** The last built-in resource manager (RM_LOGICALMSG_ID since PostgreSQL 9.6). */
export const RM_MAX_BUILTIN_ID = 21;
/** Custom resource managers (PostgreSQL 15 and later) take IDs 128 to 255. */
export const RM_MIN_CUSTOM_ID = 128;

/** xl_info bits left to the resource manager. */
export const XLR_RMGR_INFO_MASK = 0xf0;
/** RM_XLOG_ID opcodes (catalog/pg_control.h). */
export const XLOG_SWITCH = 0x40;
export const XLOG_RESTORE_POINT = 0x70;
/** RM_XACT_ID opcodes (access/xact.h), under XLOG_XACT_OPMASK. */
export const XLOG_XACT_OPMASK = 0x70;
export const XLOG_XACT_COMMIT = 0x00;
export const XLOG_XACT_ABORT = 0x20;
export const XLOG_XACT_COMMIT_PREPARED = 0x30;
export const XLOG_XACT_ABORT_PREPARED = 0x40;
/** sizeof(xl_restore_point): rp_time, then rp_name[MAXFNAMELEN]. */
export const RESTORE_POINT_SIZE = 8 + 64;

/** Block ids of the record's header region (XLR_BLOCK_ID_*). */
export const XLR_MAX_BLOCK_ID = 32;
export const XLR_BLOCK_ID_DATA_SHORT = 255;
export const XLR_BLOCK_ID_DATA_LONG = 254;
export const XLR_BLOCK_ID_ORIGIN = 253;
export const XLR_BLOCK_ID_TOPLEVEL_XID = 252;
/** XLogRecordBlockHeader.fork_flags bits. */
export const BKPBLOCK_HAS_IMAGE = 0x10;
export const BKPBLOCK_HAS_DATA = 0x20;
export const BKPBLOCK_SAME_REL = 0x80;
/** bimg_info bits: the hole flag, and the compression bits, which moved in PostgreSQL 15. */
export const BKPIMAGE_HAS_HOLE = 0x01;
const BKPIMAGE_IS_COMPRESSED_BEFORE_15 = 0x02;
const BKPIMAGE_COMPRESSED_SINCE_15 = 0x04 | 0x08 | 0x10;

/** The bimg_info bits that say an image is compressed, for WAL of `pgMajor` (undefined: a release newer than gcwal knows). */
export function compressedImageBits(pgMajor: number | undefined): number {
  return pgMajor !== undefined && pgMajor < 15 ? BKPIMAGE_IS_COMPRESSED_BEFORE_15 : BKPIMAGE_COMPRESSED_SINCE_15;
}

/** Round up to PostgreSQL's MAXALIGN (8 on every platform it runs on). */
export function maxAlign(n: number): number {
  return (n + 7) & ~7;
}

/** Readers in the byte order the server wrote the WAL in. */
export interface ByteReader {
  u16(buf: Buffer, at: number): number;
  u32(buf: Buffer, at: number): number;
  u64(buf: Buffer, at: number): bigint;
  i64(buf: Buffer, at: number): bigint;
}

const little: ByteReader = {
  u16: (b, at) => b.readUInt16LE(at),
  u32: (b, at) => b.readUInt32LE(at),
  u64: (b, at) => b.readBigUInt64LE(at),
  i64: (b, at) => b.readBigInt64LE(at),
};
const big: ByteReader = {
  u16: (b, at) => b.readUInt16BE(at),
  u32: (b, at) => b.readUInt32BE(at),
  u64: (b, at) => b.readBigUInt64BE(at),
  i64: (b, at) => b.readBigInt64BE(at),
};

/** The readers for `order`. */
export function byteReader(order: 'little' | 'big'): ByteReader {
  return order === 'little' ? little : big;
}
