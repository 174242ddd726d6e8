/**
 * A WAL segment made up for tests: a long page header (little-endian, as
 * x86 and arm64 servers write it) followed by zeros, for headers no
 * installed PostgreSQL writes, such as a release newer than gcwal knows.
 */
import { LONG_PAGE_HEADER_SIZE } from '../../../core/wal/header.ts';

export interface SyntheticHeader {
  magic: number;
  /** default 1 */
  timeline?: number;
  /** xlp_pageaddr; default the start of segment `segNo` */
  pageAddress?: bigint;
  systemIdentifier: string;
  segmentSize: number;
  /** default 8192 */
  blockSize?: number;
}

/** The bytes of segment number `segNo` of `header.segmentSize` bytes. */
export function syntheticSegment(segNo: bigint, header: SyntheticHeader): Buffer {
  const buf = Buffer.alloc(header.segmentSize);
  buf.writeUInt16LE(header.magic, 0);
  buf.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  buf.writeUInt32LE(header.timeline ?? 1, 4);
  buf.writeBigUInt64LE(header.pageAddress ?? segNo * BigInt(header.segmentSize), 8);
  buf.writeBigUInt64LE(BigInt(header.systemIdentifier), 24);
  buf.writeUInt32LE(header.segmentSize, 32);
  buf.writeUInt32LE(header.blockSize ?? 8192, 36);
  if (LONG_PAGE_HEADER_SIZE !== 40) throw new Error('the long page header layout changed');
  return buf;
}
