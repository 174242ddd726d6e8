/**
 * The sink validation streams a decoded WAL segment into: it keeps the long
 * page header (for the header checks in wal.ts) and, once that header
 * checks out, walks the segment's records as the bytes pass
 * (core/wal/records), so the segment is read once and never held.
 */
import { Writable } from 'node:stream';
import { checkSegmentHeader, LONG_PAGE_HEADER_SIZE, parseLongPageHeader } from '../wal/header.ts';
import { SegmentFactsCollector, SegmentRecordWalker, type SegmentRecordFacts } from '../wal/records/index.ts';

/** What the walk found: the facts of a segment whose records check out, or the problem. */
export type RecordWalkResult = { facts: SegmentRecordFacts } | { problem: string };

export class RecordWalkSink extends Writable {
  readonly #name: string;
  readonly #partial: boolean;
  readonly #head = Buffer.alloc(LONG_PAGE_HEADER_SIZE);
  #headFill = 0;
  #walker: SegmentRecordWalker | undefined;
  readonly #collector = new SegmentFactsCollector();

  /** `name`: the segment's file name (with `.partial` for a partial one). */
  constructor(name: string, partial: boolean) {
    super();
    this.#name = name;
    this.#partial = partial;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let rest = chunk;
    if (this.#headFill < LONG_PAGE_HEADER_SIZE) {
      const n = Math.min(rest.length, LONG_PAGE_HEADER_SIZE - this.#headFill);
      rest.copy(this.#head, this.#headFill, 0, n);
      this.#headFill += n;
      if (this.#headFill === LONG_PAGE_HEADER_SIZE) this.#start();
      // The walker reads the segment from its first byte, header included.
      if (this.#walker) this.#walker.write(this.#head);
      rest = rest.subarray(n);
    }
    if (this.#walker && rest.length > 0) this.#walker.write(rest);
    callback();
  }

  /** Start the walk when the header checks out; otherwise wal.ts reports the header's problem. */
  #start(): void {
    try {
      const header = parseLongPageHeader(this.#head, this.#name);
      const segment = checkSegmentHeader(header, this.#name);
      this.#walker = new SegmentRecordWalker(
        {
          name: this.#name,
          segmentStart: header.pageAddress,
          segmentSize: header.segmentSize,
          blockSize: header.blockSize,
          magic: header.magic,
          pgMajor: segment.pgMajor,
          byteOrder: header.byteOrder,
          timeline: segment.timeline,
          partial: this.#partial,
        },
        this.#collector.add,
      );
    } catch {
      this.#walker = undefined;
    }
  }

  /** the first LONG_PAGE_HEADER_SIZE bytes (fewer if the content was shorter) */
  get head(): Buffer {
    return this.#head.subarray(0, this.#headFill);
  }

  /** The walk's outcome, after the stream ended; undefined when the header did not allow a walk. */
  result(): RecordWalkResult | undefined {
    if (!this.#walker) return undefined;
    const walk = this.#walker.finish();
    if (walk.problem !== undefined || walk.ending === undefined) return { problem: walk.problem ?? 'the record walk did not finish' };
    return { facts: this.#collector.facts(walk.ending, walk.endLsn) };
  }
}

/** The SegmentRecordFacts a WAL validation result carries (`details.records`), if any. */
export function recordFactsOf(result: { ok: boolean; details?: Record<string, unknown> }): SegmentRecordFacts | undefined {
  const records = result.details?.records;
  return result.ok && typeof records === 'object' && records !== null ? (records as SegmentRecordFacts) : undefined;
}
