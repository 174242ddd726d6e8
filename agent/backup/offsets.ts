/**
 * Where each file's bytes lie in a part, recorded at backup-push so a delta
 * restore can read only the files it must write (agent/restore/ranges.ts):
 * the raw offset of the file's data in the part's tar stream, and the
 * stored byte range of the codec blocks holding it (ManifestEntry.offset,
 * storedOffset, storedEnd, blockOffset).
 *
 * The tar offsets come from the tar bytes themselves as they pass to the
 * compressor (TarOffsets reads only the 512-byte headers), so they are
 * exactly what a reader finds, pax headers included; the block positions
 * from the compressor (CompressorOptions.onBlock).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ManifestEntry } from '../../core/backup/meta.ts';

const BLOCK = 512;

/** One entry of the tar stream with data: where its data begins and how long it is. */
export interface TarData {
  /** tar type flag ('0' a file, '5' a directory, ...) */
  type: string;
  offset: number;
  size: number;
}

/** A tar header's size field: octal, or base-256 when its first byte has the high bit set (tar-stream writes that above 8 GiB). */
function headerSize(header: Buffer): number {
  const field = header.subarray(124, 136);
  if (field[0] & 0x80) {
    let n = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ].*$/s, '')
    .trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/**
 * A pass-through stage over a tar stream that records, in order, every
 * entry's data offset and size (`entries`), pax and GNU long-name headers
 * left out (they describe the entry after them). Stops looking at the end
 * of archive (a zero block).
 */
export class TarOffsets extends Transform {
  readonly entries: TarData[] = [];
  #position = 0;
  /** where the next header begins */
  #nextHeader = 0;
  #header = Buffer.alloc(BLOCK);
  #headerFilled = 0;
  #ended = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#ended) this.#scan(chunk);
    this.#position += chunk.length;
    callback(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let at = Math.max(0, this.#nextHeader - this.#position);
    while (!this.#ended && at < chunk.length) {
      const take = Math.min(BLOCK - this.#headerFilled, chunk.length - at);
      chunk.copy(this.#header, this.#headerFilled, at, at + take);
      this.#headerFilled += take;
      at += take;
      if (this.#headerFilled < BLOCK) return;
      this.#headerFilled = 0;
      const dataOffset = this.#position + at;
      if (this.#header[0] === 0) {
        this.#ended = true;
        return;
      }
      const size = headerSize(this.#header);
      const type = String.fromCharCode(this.#header[156] || 0x30);
      if (!['x', 'g', 'L', 'K'].includes(type)) this.entries.push({ type, offset: dataOffset, size });
      this.#nextHeader = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
      at = this.#nextHeader - this.#position;
    }
  }
}

/** Block starts as the compressor reported them (CompressorOptions.onBlock), the last pair being the end of the blocks. */
export class BlockIndex {
  readonly raw: number[] = [];
  readonly stored: number[] = [];

  add = (rawOffset: number, storedOffset: number): void => {
    this.raw.push(rawOffset);
    this.stored.push(storedOffset);
  };

  /** The last block beginning at or before `rawOffset` (the end pair excluded). */
  #blockAt(rawOffset: number): number {
    let lo = 0;
    let hi = this.raw.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.raw[mid] <= rawOffset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The stored range of the blocks holding raw bytes [offset, offset + size), and where the first of them begins in the raw bytes. */
  span(offset: number, size: number): { storedOffset: number; storedEnd: number; blockOffset: number } {
    const first = this.#blockAt(offset);
    const last = this.#blockAt(offset + size - 1);
    return { storedOffset: this.stored[first], storedEnd: this.stored[last + 1], blockOffset: this.raw[first] };
  }
}

/**
 * Record in the part's manifest lines (in the order the entries went into
 * the tar) each non-empty file's data offset and block span, when `blocks`
 * holds the compressor's blocks. Throws when the tar and the lines disagree (a bug, never data).
 */
export function recordOffsets(lines: ManifestEntry[], tar: readonly TarData[], blocks: BlockIndex | undefined): void {
  const withData = tar.filter((e) => e.type !== '5');
  const files = lines.filter((l) => l.type === 'file');
  if (withData.length !== files.length) throw new Error(`the part's tar holds ${withData.length} files, its manifest lines ${files.length}`);
  // A codec that reports no blocks (not lzo) gives no ranges to read.
  const complete = blocks !== undefined && blocks.raw.length >= 2;
  files.forEach((line, i) => {
    const found = withData[i];
    if (found.size !== line.size) throw new Error(`${line.path} holds ${found.size} bytes in the tar, ${line.size} in its manifest line`);
    if (line.size > 0 && complete) Object.assign(line, { offset: found.offset, ...blocks.span(found.offset, found.size) });
  });
}
