/**
 * The `lzo` codec: the lzop file format, so that `lzop -d` restores any object
 * by hand (as WAL-E users expect) and files made by `lzop` decompress here.
 * Compression is LZO1X-1 from the native `lzo` package; decoding is
 * `lzo-wasm` (wasm.ts), or on request the same package's safe decoder
 * (backup-fetch, where decoding speed matters and the addon is installed). Both load on first use, not on import.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { CorruptObjectError, UsageError } from '../../errors.ts';
import { adler32 } from './adler32.ts';
import { ByteQueue } from './byte-queue.ts';
import { loadLzoWasm, LZO_WASM_MAX_BLOCK, type LzoBlockDecoder } from './wasm.ts';
import { LZOP_WRITE_FLAGS, LZOP_WRITE_FLAGS_RAW_RECORDED, LzopBlockEncoder, lzopStreamHeader } from './blocks.ts';
import { loadLzoBlockCompressor, loadLzoBlockDecoder, type LzoBlockCompressor } from './native.ts';
import { crc32, endMarker, LZOP_BLOCK_SIZE, parseBlockHead, parseHeader, undoFilter, type BlockHead, type LzopHeader } from './format.ts';
import type { Codec, CompressorOptions, DecompressorOptions } from '../types.ts';

/** Cuts input into 256 KiB blocks and writes each compressed, or stored when compression does not help. */
class LzopCompressor extends Transform {
  readonly #blocks: LzopBlockEncoder;
  readonly #onBlock: ((rawOffset: number, storedOffset: number) => void) | undefined;
  #staging = Buffer.allocUnsafe(LZOP_BLOCK_SIZE);
  #filled = 0;
  #raw = 0;
  #stored = 0;

  constructor(compress: LzoBlockCompressor, flags: number, onBlock?: (rawOffset: number, storedOffset: number) => void) {
    super();
    this.#blocks = new LzopBlockEncoder(compress, flags);
    this.#onBlock = onBlock;
    const header = lzopStreamHeader(flags);
    this.#stored = header.length;
    this.push(header);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let offset = 0;
      if (this.#filled > 0) {
        offset = chunk.copy(this.#staging, this.#filled, 0, LZOP_BLOCK_SIZE - this.#filled);
        this.#filled += offset;
        if (this.#filled === LZOP_BLOCK_SIZE) this.#emitStaging();
      }
      // Whole blocks straight from the chunk; nothing pushed refers to the
      // writer's buffer (a stored block is copied), so it is not retained.
      for (; chunk.length - offset >= LZOP_BLOCK_SIZE; offset += LZOP_BLOCK_SIZE) {
        this.#emit(chunk.subarray(offset, offset + LZOP_BLOCK_SIZE));
      }
      if (offset < chunk.length) this.#filled += chunk.copy(this.#staging, this.#filled, offset);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.#filled > 0) this.#emitStaging();
      this.#onBlock?.(this.#raw, this.#stored);
      this.push(endMarker());
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  #emitStaging(): void {
    this.#emit(this.#staging.subarray(0, this.#filled));
    this.#filled = 0;
  }

  #emit(raw: Buffer): void {
    const block = this.#blocks.encode(raw);
    this.#onBlock?.(this.#raw, this.#stored);
    this.#raw += raw.length;
    this.#stored += block.length;
    this.push(block);
  }
}

type Stage = 'header' | 'blocks' | 'end';

/**
 * Parses an lzop stream as it arrives, split anywhere, verifies every
 * checksum the header's flags promise, and emits the decoded blocks. Every
 * malformed input ends the stream with a CorruptObjectError.
 */
class LzopDecompressor extends Transform {
  readonly #decoders: () => Promise<LzoBlockDecoder>;
  readonly #checkDecoded: boolean;
  readonly #queue = new ByteQueue();
  #stage: Stage = 'header';
  /** bytes needed before parsing can progress */
  #need = 1;
  #header: LzopHeader | undefined;
  #block = 0;
  #seen = 0;
  /** a ranged read of whole blocks: it may end at any block boundary, the end marker being optional */
  #blocksOnly = false;

  /** Without `header`, a whole lzop stream; with it, blocks from a block boundary of a stream with that header (#blocksOnly). */
  constructor(decoders: () => Promise<LzoBlockDecoder>, options: DecompressorOptions, header?: LzopHeader) {
    super();
    this.#decoders = decoders;
    this.#checkDecoded = options.decodedVerifiedByCaller !== true;
    if (header) {
      this.#header = header;
      this.#stage = 'blocks';
      this.#need = 4;
      this.#blocksOnly = true;
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    this.#queue.push(chunk);
    this.#drain().then(
      () => callback(),
      (err: unknown) => callback(err as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    const complete = this.#stage === 'end' || (this.#blocksOnly && this.#stage === 'blocks' && this.#queue.length === 0);
    callback(complete ? null : this.#truncated());
  }

  #truncated(): CorruptObjectError {
    if (this.#seen === 0) return new CorruptObjectError('lzo stream is empty');
    if (this.#stage === 'header') return new CorruptObjectError(`lzo stream is truncated inside its header (${this.#seen} bytes)`);
    if (this.#queue.length > 0) return new CorruptObjectError(`lzo stream is truncated inside block ${this.#block}`);
    const after = this.#block === 0 ? 'its header' : `block ${this.#block - 1}`;
    return new CorruptObjectError(`lzo stream is truncated: it ends after ${after} without the end marker`);
  }

  async #drain(): Promise<void> {
    while (this.#queue.length >= this.#need) {
      if (this.#stage === 'header') {
        const parsed = parseHeader(this.#queue.peek(this.#queue.length));
        if ('need' in parsed) {
          this.#need = parsed.need;
          continue;
        }
        this.#queue.skip(parsed.size);
        this.#header = parsed.header;
        this.#stage = 'blocks';
        this.#need = 4;
      } else if (this.#stage === 'blocks') {
        const flags = this.#header!.flags;
        const head = parseBlockHead(this.#queue.peek(Math.min(this.#queue.length, 24)), flags, this.#block);
        if ('need' in head) {
          this.#need = head.need;
          continue;
        }
        if ('end' in head) {
          this.#queue.skip(head.size);
          this.#stage = 'end';
          this.#need = 1;
          continue;
        }
        if (this.#queue.length < head.size + head.compressedLength) {
          this.#need = head.size + head.compressedLength;
          continue;
        }
        this.#queue.skip(head.size);
        const data = this.#queue.take(head.compressedLength);
        this.push(await this.#decodeBlock(head, data));
        this.#block++;
        this.#need = 4;
      } else {
        throw new CorruptObjectError(`lzo stream has ${this.#queue.length} bytes of trailing data after its end marker`);
      }
    }
  }

  async #decodeBlock(head: BlockHead, data: Buffer): Promise<Buffer> {
    const header = this.#header!;
    const n = this.#block;
    let raw: Buffer;
    if (head.compressedLength === head.uncompressedLength) {
      // copy: the queue's bytes may belong to the writer's chunk, and the filter edits in place
      raw = header.filter ? Buffer.from(data) : data;
    } else {
      verify(n, 'adler32', 'compressed', head.adler32C, () => adler32(data));
      verify(n, 'crc32', 'compressed', head.crc32C, () => crc32(data));
      if (head.uncompressedLength > LZO_WASM_MAX_BLOCK) {
        throw new CorruptObjectError(
          `lzo block ${n} holds ${head.uncompressedLength} bytes; gcwal decodes blocks of up to ${LZO_WASM_MAX_BLOCK} (lzop writes ${LZOP_BLOCK_SIZE})`,
          'the file was not written by gcwal or lzop; decompress it with the tool that wrote it',
        );
      }
      // Decompressors share the codec's decoder; another one's failure may
      // have discarded it while this one awaited. decode() runs synchronously
      // once the loop exits, so nothing can discard it in between.
      let decoder = await this.#decoders();
      while (!decoder.usable) decoder = await this.#decoders();
      try {
        raw = decoder.decode(data, head.uncompressedLength);
      } catch (err) {
        const reason = err instanceof Error ? err.message.toLowerCase() : String(err);
        throw new CorruptObjectError(`lzo block ${n} does not decode: ${reason}`, undefined, { cause: err });
      }
    }
    if (header.filter) undoFilter(raw, header.filter);
    if (this.#checkDecoded) {
      verify(n, 'adler32', 'uncompressed', head.adler32D, () => adler32(raw));
      verify(n, 'crc32', 'uncompressed', head.crc32D, () => crc32(raw));
    }
    return raw;
  }
}

function verify(block: number, kind: string, of: string, stored: number | undefined, compute: () => number): void {
  if (stored === undefined) return;
  const computed = compute();
  if (computed !== stored) {
    throw new CorruptObjectError(`lzo block ${block} fails its ${kind} check of ${of} data (stored ${stored.toString(16)}, computed ${computed.toString(16)})`);
  }
}

/**
 * One usable decoder at a time, created on first need and replaced when a
 * failure made it unusable: the native one when `native` is asked for and
 * the `lzo` addon is installed (never unusable), else wasm. Held by a codec
 * instance, never module-wide.
 */
function decoderCache(native: boolean): () => Promise<LzoBlockDecoder> {
  let current: Promise<LzoBlockDecoder> | undefined;
  const next = async (): Promise<LzoBlockDecoder> => {
    const pending = (current ??= Promise.resolve((native ? loadLzoBlockDecoder() : undefined) ?? loadLzoWasm()));
    try {
      const decoder = await pending;
      if (decoder.usable) return decoder;
    } catch (err) {
      if (current === pending) current = undefined;
      throw err;
    }
    if (current === pending) current = undefined;
    return next();
  };
  return next;
}

/**
 * The lzo codec. `compressor(level)` accepts no level (LZO1X-1 is the only
 * one the lzo package offers) and throws UsageError for any other; with
 * `rawChecksumRecorded` its blocks carry no checksums
 * (LZOP_WRITE_FLAGS_RAW_RECORDED).
 * `decompressor()` reads any lzop file whose method is LZO1X (lzop -1 to -9),
 * with Adler-32 or CRC-32 checksums, filters and extra fields; blocks larger
 * than 8 MiB (which lzop never writes) are refused. The decoder (wasm, or
 * with `native` the addon's where installed) is created on the first
 * compressed block and shared by this instance's decompressors;
 * `decodedVerifiedByCaller` skips the per-block checksums of decoded data.
 */
export function lzoCodec(): Codec {
  const decoders = decoderCache(false);
  const nativeDecoders = decoderCache(true);
  return {
    name: 'lzo',
    extension: '.lzo',
    compressor(level?: number, options: CompressorOptions = {}): Transform {
      if (level !== undefined)
        throw new UsageError(`compression level ${level} is not available for lzo`, 'lzo has a single level; leave the compression level unset');
      return new LzopCompressor(loadLzoBlockCompressor(), options.rawChecksumRecorded ? LZOP_WRITE_FLAGS_RAW_RECORDED : LZOP_WRITE_FLAGS, options.onBlock);
    },
    decompressor(options: DecompressorOptions = {}): Transform {
      return new LzopDecompressor(options.native ? nativeDecoders : decoders, options);
    },
  };
}

/**
 * The header of an lzop stream from its first bytes: the header and the
 * offset where its first block begins. Throws CorruptObjectError when
 * `start` is not the start of an lzop stream or holds less than its header.
 */
export function readLzopHeader(start: Buffer): { header: LzopHeader; size: number } {
  const parsed = parseHeader(start);
  if ('need' in parsed) throw new CorruptObjectError(`lzo stream is truncated inside its header (${start.length} bytes)`);
  return parsed;
}

/**
 * Decodes whole lzop blocks of a stream with `header`, starting at a block
 * boundary (a ranged read of a part, CompressorOptions.onBlock): every
 * check of the full decompressor, but the input may end at any block
 * boundary. With `native`, the addon's decoder where installed.
 */
export function lzopBlocksDecompressor(header: LzopHeader, options: DecompressorOptions = {}): Transform {
  return new LzopDecompressor(decoderCache(options.native === true), options, header);
}
