/**
 * The record walk of one WAL segment, as pg_waldump makes it when started at
 * the segment: fed the segment's bytes in order (any chunking), it checks
 * every page header, skips the tail of a record begun in the previous
 * segment (its CRC needs bytes this segment does not hold), then reads each
 * record: its header and `xl_prev` link, its header region's lengths, its
 * CRC32C over pieces on as many pages as it spans. A record that runs into
 * the next segment is counted here, where it starts; only its header can be
 * checked. After a switch record the rest of the segment is padding.
 *
 * Holds one page and the few kilobytes a spanning record keeps (see
 * assemble.ts), whatever the segment size.
 */
import { crc32c } from '../../checksum/crc32c.ts';
import { formatLsn } from '../lsn.ts';
import { XLP_ALL_FLAGS, XLP_LONG_HEADER, LONG_PAGE_HEADER_SIZE } from '../header.ts';
import { RecordAssembler } from './assemble.ts';
import {
  checkRecordHeader,
  checkRecordLength,
  decodeRecordLayout,
  eventOf,
  mainDataWanted,
  readRecordHeader,
  type RecordEvent,
  type RecordHeader,
} from './decode.ts';
import {
  byteReader,
  type ByteReader,
  compressedImageBits,
  maxAlign,
  RECORD_CRC_OFFSET,
  RECORD_HEADER_SIZE,
  SHORT_PAGE_HEADER_SIZE,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
} from './format.ts';

/** What the walker needs to know of the segment, from its checked long page header and name. */
export interface SegmentWalkSetup {
  /** the segment's file name, for messages */
  name: string;
  /** LSN of the segment's first byte */
  segmentStart: bigint;
  segmentSize: number;
  /** WAL page size (xlp_xlog_blcksz) */
  blockSize: number;
  /** xlp_magic of the first page: every page carries it */
  magic: number;
  /** PostgreSQL major version that wrote it; undefined for a release newer than gcwal knows */
  pgMajor: number | undefined;
  byteOrder: 'little' | 'big';
  /** the timeline of the file's name: no page may carry a later one */
  timeline: number;
  /** a `.partial` file: the walk ends quietly where written WAL ends */
  partial: boolean;
}

/** One record that starts in the segment. */
export interface WalkedRecord {
  lsn: bigint;
  totalLength: number;
  rmid: number;
  info: number;
  xid: number;
  /** a transaction end, restore point or switch; undefined for any other record, or one whose data lies beyond the segment */
  event?: RecordEvent;
  /** false for the record that runs into the next segment: its CRC covers bytes the segment does not hold */
  complete: boolean;
}

/**
 * How valid WAL ends in the segment: at a switch record (the rest is
 * padding), with a record that runs into the next segment, with a record
 * that ends exactly at the segment's end, or (a `.partial` only) where
 * written WAL stops.
 */
export type SegmentEnding = 'switch' | 'continues' | 'segment-end' | 'end-of-wal';

/** The outcome of a walk. */
export interface SegmentWalk {
  /** records that start in the segment, the one running into the next counted */
  records: number;
  /** set when the records do not check out: one line, PostgreSQL's wording, with the LSN */
  problem?: string;
  ending?: SegmentEnding;
  /** LSN just after the last record that starts in the segment (in the next segment for 'continues'); the segment's start if none does */
  endLsn: bigint;
  /** for 'end-of-wal': why reading stopped there, as pg_waldump would say it */
  endReason?: string;
}

type State =
  | { at: 'start' }
  /** the segment opens with the tail of an earlier record, `left` bytes of it after this page */
  | { at: 'skip'; left: number }
  | { at: 'records' }
  | { at: 'record'; assembler: RecordAssembler; headerChecked: boolean }
  | { at: 'done' };

export class SegmentRecordWalker {
  readonly #setup: SegmentWalkSetup;
  readonly #r: ByteReader;
  readonly #compressedBits: number;
  readonly #customRmgrs: boolean;
  readonly #onRecord: ((record: WalkedRecord) => void) | undefined;
  readonly #page: Buffer;
  #pageFill = 0;
  #pageIndex = 0;
  #state: State = { at: 'start' };
  #prev: bigint | undefined;
  #lastTimeline = 0;
  #records = 0;
  #endLsn: bigint;
  #ending: SegmentEnding | undefined;
  #problem: string | undefined;
  #endReason: string | undefined;
  #bytes = 0;

  constructor(setup: SegmentWalkSetup, onRecord?: (record: WalkedRecord) => void) {
    this.#setup = setup;
    this.#r = byteReader(setup.byteOrder);
    this.#compressedBits = compressedImageBits(setup.pgMajor);
    this.#customRmgrs = setup.pgMajor === undefined || setup.pgMajor >= 15;
    this.#onRecord = onRecord;
    this.#page = Buffer.allocUnsafe(setup.blockSize);
    this.#endLsn = setup.segmentStart;
  }

  /** Take the next bytes of the segment. */
  write(chunk: Buffer): void {
    const size = this.#setup.blockSize;
    let off = 0;
    while (off < chunk.length && this.#bytes < this.#setup.segmentSize) {
      if (this.#state.at === 'done') {
        this.#bytes += chunk.length - off;
        return;
      }
      if (this.#pageFill === 0 && chunk.length - off >= size) {
        // A whole page in the chunk: read it where it lies.
        this.#processPage(chunk.subarray(off, off + size));
        off += size;
        this.#bytes += size;
        continue;
      }
      const n = Math.min(size - this.#pageFill, chunk.length - off);
      chunk.copy(this.#page, this.#pageFill, off, off + n);
      this.#pageFill += n;
      off += n;
      this.#bytes += n;
      if (this.#pageFill === size) {
        this.#pageFill = 0;
        this.#processPage(this.#page);
      }
    }
  }

  /** The outcome, once every byte has been written. */
  finish(): SegmentWalk {
    if (this.#bytes < this.#setup.segmentSize && this.#state.at !== 'done') {
      this.#stop(`WAL segment ends after ${this.#bytes} of its ${this.#setup.segmentSize} bytes`);
    }
    const state = this.#state;
    if (state.at === 'record') {
      // Runs into the next segment: counted here, its CRC checked by no one segment.
      const a = state.assembler;
      const header = a.header(this.#r);
      this.#emit(a.lsn, a.totalLength, header, a.layout, a.main, false);
      this.#endLsn = a.lsn + BigInt(a.totalLength);
      this.#ending = 'continues';
    } else if (state.at === 'skip') {
      this.#endLsn = this.#setup.segmentStart + BigInt(this.#setup.segmentSize);
      this.#ending = 'continues';
    } else if (state.at === 'records' || state.at === 'start') {
      this.#ending = 'segment-end';
    }
    this.#state = { at: 'done' };
    const walk: SegmentWalk = { records: this.#records, endLsn: this.#endLsn };
    if (this.#problem !== undefined) walk.problem = this.#problem;
    else walk.ending = this.#ending;
    if (this.#endReason !== undefined) walk.endReason = this.#endReason;
    return walk;
  }

  /** Valid WAL stops here: the end of a `.partial`, anywhere else a problem. */
  #stop(reason: string): void {
    if (this.#setup.partial) {
      this.#ending = 'end-of-wal';
      this.#endReason = reason;
    } else {
      this.#problem = reason;
    }
    this.#state = { at: 'done' };
  }

  #processPage(page: Buffer): void {
    const r = this.#r;
    const setup = this.#setup;
    const pageLsn = setup.segmentStart + BigInt(this.#pageIndex * setup.blockSize);
    const offset = this.#pageIndex * setup.blockSize;
    this.#pageIndex++;
    const magic = r.u16(page, 0);
    const info = r.u16(page, 2);
    const tli = r.u32(page, 4);
    const address = r.u64(page, 8);
    const remLen = r.u32(page, 16);
    const where = `${setup.name}, offset ${offset}`;
    if (magic !== setup.magic) return this.#stop(`invalid magic number ${hex4(magic)} in log segment ${where}`);
    if (setup.pgMajor !== undefined && info & ~XLP_ALL_FLAGS) return this.#stop(`invalid info bits ${hex4(info)} in log segment ${where}`);
    if (offset === 0 && !(info & XLP_LONG_HEADER)) return this.#stop(`invalid info bits ${hex4(info)} in log segment ${where}`);
    if (address !== pageLsn) return this.#stop(`unexpected pageaddr ${formatLsn(address)} in log segment ${where}`);
    if (tli < this.#lastTimeline || tli === 0 || tli > setup.timeline) {
      return this.#stop(`out-of-sequence timeline ID ${tli} (after ${this.#lastTimeline}) in log segment ${where}`);
    }
    this.#lastTimeline = tli;
    const headerSize = info & XLP_LONG_HEADER ? LONG_PAGE_HEADER_SIZE : SHORT_PAGE_HEADER_SIZE;
    const room = setup.blockSize - headerSize;
    const contrecord = (info & XLP_FIRST_IS_CONTRECORD) !== 0;
    const overwrite = (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0;
    const state = this.#state;
    switch (state.at) {
      case 'start':
      case 'skip': {
        // As XLogFindNextRecord: pass over the tail of a record begun before the segment.
        if (state.at === 'skip' && !contrecord && !overwrite) return this.#stop(`there is no contrecord flag at ${formatLsn(pageLsn)}`);
        if (state.at === 'skip' && contrecord && remLen !== state.left)
          return this.#stop(`invalid contrecord length ${remLen} (expected ${state.left}) at ${formatLsn(pageLsn)}`);
        if (contrecord && !overwrite) {
          if (remLen >= room) {
            this.#state = { at: 'skip', left: remLen - room };
            return;
          }
          this.#state = { at: 'records' };
          return this.#readRecords(page, pageLsn, headerSize + maxAlign(remLen));
        }
        this.#state = { at: 'records' };
        return this.#readRecords(page, pageLsn, headerSize);
      }
      case 'record': {
        if (overwrite) {
          // The record was abandoned by a crash; a new one starts after the header (XLogDecodeNextRecord's restart).
          this.#state = { at: 'records' };
          return this.#readRecords(page, pageLsn, headerSize);
        }
        const a = state.assembler;
        if (!contrecord) return this.#stop(`there is no contrecord flag at ${formatLsn(pageLsn)}`);
        if (remLen === 0 || remLen !== a.remaining) return this.#stop(`invalid contrecord length ${remLen} (expected ${a.remaining}) at ${formatLsn(pageLsn)}`);
        const n = Math.min(a.remaining, room);
        a.feed(page.subarray(headerSize, headerSize + n), r, this.#compressedBits);
        if (!state.headerChecked) {
          const header = a.header(r);
          if (header) {
            const problem = checkRecordHeader(header, a.lsn, this.#prev, this.#customRmgrs);
            if (problem) return this.#stop(problem);
            state.headerChecked = true;
          }
        }
        if (a.remaining > 0) return;
        if (!this.#finishAssembled(a)) return;
        return this.#readRecords(page, pageLsn, maxAlign(headerSize + n));
      }
      case 'records':
        if (contrecord) return this.#stop(`contrecord is requested by ${formatLsn(pageLsn + BigInt(headerSize))}`);
        return this.#readRecords(page, pageLsn, headerSize);
      case 'done':
        return;
    }
  }

  /** Read the records that start on `page` from `pos`; leaves a spanning one to the next pages. */
  #readRecords(page: Buffer, pageLsn: bigint, pos: number): void {
    const r = this.#r;
    const size = this.#setup.blockSize;
    while (pos < size && this.#state.at === 'records') {
      const lsn = pageLsn + BigInt(pos);
      const totalLength = r.u32(page, pos);
      const lengthProblem = checkRecordLength(totalLength, lsn);
      if (lengthProblem) return this.#stop(lengthProblem);
      let header: RecordHeader | undefined;
      if (pos + RECORD_HEADER_SIZE <= size) {
        header = readRecordHeader(page, pos, r);
        const problem = checkRecordHeader(header, lsn, this.#prev, this.#customRmgrs);
        if (problem) return this.#stop(problem);
      }
      if (pos + totalLength > size) {
        const assembler = new RecordAssembler(lsn, totalLength);
        assembler.feed(page.subarray(pos), r, this.#compressedBits);
        this.#state = { at: 'record', assembler, headerChecked: header !== undefined };
        return;
      }
      // The whole record is on this page: check it where it lies.
      const record = page.subarray(pos, pos + totalLength);
      const crc = crc32c(record.subarray(0, RECORD_CRC_OFFSET), crc32c(record.subarray(RECORD_HEADER_SIZE)));
      if (crc !== header!.crc) return this.#stop(`incorrect resource manager data checksum in record at ${formatLsn(lsn)}`);
      const layout = decodeRecordLayout(record, totalLength, lsn, r, this.#compressedBits);
      if (typeof layout === 'string') return this.#stop(layout);
      const main = record.subarray(layout.mainOffset, layout.mainOffset + Math.min(layout.mainLength, mainDataWanted(header!.rmid, header!.info)));
      if (!this.#emit(lsn, totalLength, header, layout, main, true)) return;
      pos = maxAlign(pos + totalLength);
    }
  }

  /** Check a record gathered from several pages and emit it; false when it does not check out. */
  #finishAssembled(a: RecordAssembler): boolean {
    const crcProblem = a.checkCrc(this.#r);
    if (crcProblem) {
      this.#stop(crcProblem);
      return false;
    }
    if (typeof a.layout === 'string') {
      this.#stop(a.layout);
      return false;
    }
    this.#state = { at: 'records' };
    return this.#emit(a.lsn, a.totalLength, a.header(this.#r), a.layout, a.main, true);
  }

  /** Count and report a record; after a switch record, stop. False when the walk stopped. */
  #emit(
    lsn: bigint,
    totalLength: number,
    header: RecordHeader | undefined,
    layout: { mainLength: number } | string | undefined,
    main: Buffer | undefined,
    complete: boolean,
  ): boolean {
    this.#records++;
    this.#prev = lsn;
    this.#endLsn = lsn + BigInt(totalLength);
    let event: RecordEvent | undefined;
    if (header && typeof layout === 'object') {
      // A record whose main data lies beyond the segment gives a problem here, ignored: it is not complete.
      const found = eventOf(header.rmid, header.info, main ?? EMPTY, layout.mainLength, lsn, this.#r);
      if (typeof found === 'string') {
        if (complete) {
          this.#stop(found);
          return false;
        }
      } else {
        event = found;
      }
    }
    if (this.#onRecord) {
      const record: WalkedRecord = { lsn, totalLength, rmid: header?.rmid ?? -1, info: header?.info ?? 0, xid: header?.xid ?? 0, complete };
      if (event) record.event = event;
      this.#onRecord(record);
    }
    if (complete && event?.kind === 'switch') {
      this.#ending = 'switch';
      this.#state = { at: 'done' };
      return false;
    }
    return true;
  }
}

const EMPTY = Buffer.alloc(0);

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
