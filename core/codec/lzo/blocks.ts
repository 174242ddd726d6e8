/**
 * Writing lzop streams: the header gcwal writes and the encoder of one block
 * at a time. Shared by the streaming compressor (lzop.ts) and the parallel
 * one (parallel.ts, worker.ts), so both write the same bytes.
 */
import type { LzoBlockCompressor } from './native.ts';
import { lzoCompressBound } from './native.ts';
import { blockHeadLength, encodeBlock, encodeHeader, endMarker, Flag, Method, nativeCrc32, writeBlockHead, type LzopHeader } from './format.ts';

/**
 * Block checksums of the streams we write: of the data, and of the compressed
 * bytes so damage is caught before decoding. CRC-32 (lzop's `--crc32` kind)
 * when Node has a native one: zlib.crc32 is several times faster than
 * Adler-32 in JavaScript, which was a fifth of a WAL push
 * (docs/performance.md). Otherwise Adler-32, lzop's default. `lzop -d`
 * verifies either.
 * The header keeps its Adler-32 (F_H_CRC32 would raise version_needed to
 * 0x1001 for 30 bytes' worth of checksum).
 */
export const LZOP_WRITE_FLAGS = nativeCrc32 ? Flag.osUnix | Flag.crc32D | Flag.crc32C : Flag.osUnix | Flag.adler32D | Flag.adler32C;

/**
 * The flags of a stream whose raw and stored bytes have a size and CRC32C
 * recorded elsewhere that every reader checks (a backup part's rawCrc32c and
 * storedCrc32c): no block checksums, as `lzop -F` writes. A checksum of the
 * uncompressed data would be a second pass over every raw byte (the largest
 * single cost of a backup-push after reading, docs/performance.md) for what
 * the recorded CRC32C already guarantees; and lzop accepts
 * a checksum of the compressed bytes only alongside one of the data. The
 * decoders are bounds-checked, so damaged input fails or decodes to bytes
 * the recorded CRC32C refuses. `lzop -d` and `lzop -t` accept such a file.
 */
export const LZOP_WRITE_FLAGS_RAW_RECORDED = Flag.osUnix;

/**
 * The header we write: what `lzop` 1.03 writes for a regular file with its
 * default method (LZO1X-1, shown as level 5), minus the name and time, so the
 * same input always gives the same bytes.
 */
export function lzopStreamHeader(flags: number = LZOP_WRITE_FLAGS): Buffer {
  const header: LzopHeader = {
    version: 0x1030,
    // the minilzo 2.09 inside the lzo package
    libVersion: 0x2090,
    versionNeeded: 0x0940,
    method: Method.lzo1x1,
    level: 5,
    flags,
    filter: 0,
    mode: 0o100644,
    mtime: 0,
    name: '',
  };
  return encodeHeader(header);
}

/** The 4 zero bytes that end our streams. */
export const lzopStreamEnd: () => Buffer = endMarker;

/**
 * Output is carved from slabs this large: a block's head and compressed data
 * go straight into one, with no per-block allocation or copy, and the
 * returned blocks are views of it (a slab is freed once its last block is).
 */
const SLAB_BYTES = 2 * 1024 * 1024;

/** Encodes blocks one at a time with `flags` (LZOP_WRITE_FLAGS by default); holds the slab it carves them from. */
export class LzopBlockEncoder {
  readonly #compress: LzoBlockCompressor;
  readonly #flags: number;
  readonly #headLength: number;
  #slab = Buffer.allocUnsafe(0);
  #used = 0;

  constructor(compress: LzoBlockCompressor, flags: number = LZOP_WRITE_FLAGS) {
    this.#compress = compress;
    this.#flags = flags;
    this.#headLength = blockHeadLength(flags, true);
  }

  /**
   * One whole block (head and data) for `raw` (at most LZOP_BLOCK_SIZE
   * bytes): compressed, or stored as is when compression does not make it
   * smaller, as lzop does. The result never refers to `raw`'s memory.
   */
  encode(raw: Buffer): Buffer {
    const room = this.#headLength + lzoCompressBound(raw.length);
    if (this.#slab.length - this.#used < room) {
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, room));
      this.#used = 0;
    }
    const start = this.#used;
    const dataStart = start + this.#headLength;
    const packedLength = this.#compress(raw, this.#slab.subarray(dataStart, start + room));
    // Stored as is (the slab space is reused).
    if (packedLength >= raw.length) return encodeBlock(this.#flags, raw, undefined);
    writeBlockHead(this.#slab, start, this.#flags, raw, this.#slab.subarray(dataStart, dataStart + packedLength));
    this.#used = dataStart + packedLength;
    return this.#slab.subarray(start, this.#used);
  }
}
