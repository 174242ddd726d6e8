/**
 * A record that spans pages, gathered as its pieces arrive without holding
 * it: its CRC is computed as the bytes pass, and only its header region and
 * the first bytes of its main data (what the walker reads) are kept, so a
 * record of any length costs a few kilobytes.
 */
import { crc32c } from '../../checksum/crc32c.ts';
import { formatLsn } from '../lsn.ts';
import { decodeRecordLayout, mainDataWanted, readRecordHeader, type RecordHeader, type RecordLayout } from './decode.ts';
import { type ByteReader, RECORD_CRC_OFFSET, RECORD_HEADER_SIZE } from './format.ts';

/** Bytes of a record kept from its start: more than any valid header region (33 block headers and the rest). */
export const RECORD_PREFIX_LIMIT = 4096;

export class RecordAssembler {
  readonly lsn: bigint;
  readonly totalLength: number;
  #got = 0;
  #crc = 0;
  readonly #prefix: Buffer;
  #layout: RecordLayout | string | undefined;
  #header: RecordHeader | undefined;
  #main: Buffer | undefined;
  #mainWanted = 0;

  constructor(lsn: bigint, totalLength: number) {
    this.lsn = lsn;
    this.totalLength = totalLength;
    this.#prefix = Buffer.allocUnsafe(Math.min(totalLength, RECORD_PREFIX_LIMIT));
  }

  /** bytes still to come */
  get remaining(): number {
    return this.totalLength - this.#got;
  }

  /** the record's header, once its first RECORD_HEADER_SIZE bytes have arrived */
  header(r: ByteReader): RecordHeader | undefined {
    if (this.#header === undefined && this.#got >= RECORD_HEADER_SIZE) this.#header = readRecordHeader(this.#prefix, 0, r);
    return this.#header;
  }

  /** Take the next `piece` of the record (at most `remaining` bytes); copies what it keeps. */
  feed(piece: Buffer, r: ByteReader, compressedBits: number): void {
    let offset = 0;
    const prefixLength = this.#prefix.length;
    // Split at the end of the kept prefix: the layout is decoded there, before the bytes after it pass.
    if (this.#got < prefixLength) {
      const n = Math.min(piece.length, prefixLength - this.#got);
      this.#consume(piece.subarray(0, n));
      offset = n;
      if (this.#got === prefixLength) this.#decode(r, compressedBits);
    }
    if (offset < piece.length) this.#consume(piece.subarray(offset));
  }

  #consume(bytes: Buffer): void {
    const start = this.#got;
    const end = start + bytes.length;
    if (start < this.#prefix.length) bytes.copy(this.#prefix, start, 0, Math.min(bytes.length, this.#prefix.length - start));
    // The CRC covers the bytes after the header first, then the header up to xl_crc (finish).
    const crcFrom = Math.max(0, RECORD_HEADER_SIZE - start);
    if (crcFrom < bytes.length) this.#crc = crc32c(bytes.subarray(crcFrom), this.#crc);
    if (this.#main && typeof this.#layout === 'object') {
      const from = this.#layout.mainOffset;
      const to = from + this.#mainWanted;
      const a = Math.max(start, from);
      const b = Math.min(end, to);
      if (a < b) bytes.copy(this.#main, a - from, a - start, b - start);
    }
    this.#got = end;
  }

  #decode(r: ByteReader, compressedBits: number): void {
    const header = this.header(r);
    if (!header) return;
    this.#layout = decodeRecordLayout(this.#prefix, this.totalLength, this.lsn, r, compressedBits);
    if (typeof this.#layout === 'string') return;
    this.#mainWanted = Math.min(mainDataWanted(header.rmid, header.info), this.#layout.mainLength);
    if (this.#mainWanted === 0) return;
    this.#main = Buffer.alloc(this.#mainWanted);
    const { mainOffset } = this.#layout;
    // What of the main data the prefix already holds.
    if (mainOffset < this.#prefix.length) this.#prefix.copy(this.#main, 0, mainOffset, Math.min(this.#prefix.length, mainOffset + this.#mainWanted));
  }

  /** The layout, or its problem; undefined until the prefix has arrived. */
  get layout(): RecordLayout | string | undefined {
    return this.#layout;
  }

  /** The first bytes of the main data the walker wants, once they have all arrived. */
  get main(): Buffer | undefined {
    if (typeof this.#layout !== 'object' || !this.#main) return undefined;
    return this.#got >= this.#layout.mainOffset + this.#mainWanted ? this.#main : undefined;
  }

  /** Once every byte has arrived: the problem with its CRC, or undefined. */
  checkCrc(r: ByteReader): string | undefined {
    const header = this.header(r)!;
    const crc = crc32c(this.#prefix.subarray(0, RECORD_CRC_OFFSET), this.#crc);
    return crc === header.crc ? undefined : `incorrect resource manager data checksum in record at ${formatLsn(this.lsn)}`;
  }
}
