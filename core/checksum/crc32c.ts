/**
 * CRC32C (Castagnoli), the checksum GCS keeps for every object. Computed with
 * `fast-crc32c` (SSE4.2 when the CPU has it, a table-driven fallback
 * otherwise) so checksumming never limits archive throughput.
 */
import { createRequire } from 'node:module';
import { Transform, type TransformCallback } from 'node:stream';

// fast-crc32c is a native addon that costs a few milliseconds to load; it is
// required on first use (require() caches it) so commands that never hash stay
// inside the CLI's start-up budget.
const require = createRequire(import.meta.url);

interface FastCrc32c {
  calculate(data: Buffer, initial?: number): number;
}

function implementation(): FastCrc32c {
  return require('fast-crc32c') as FastCrc32c;
}

/**
 * CRC32C of `data` as an unsigned 32-bit integer. Pass the result for one
 * buffer as `initial` to continue over the next one:
 * `crc32c(b, crc32c(a)) === crc32c(Buffer.concat([a, b]))`. The CRC of no bytes is 0.
 */
export function crc32c(data: Buffer, initial = 0): number {
  return implementation().calculate(data, initial >>> 0) >>> 0;
}

/**
 * A CRC32C value in the form GCS uses for the `crc32c` object property and
 * the `x-goog-hash: crc32c=` header: the 4 bytes in big-endian order, base64.
 * Throws RangeError when `value` is not an integer in [0, 2^32).
 */
export function crc32cBase64(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`crc32c value ${value} is not an unsigned 32-bit integer`);
  }
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes.toString('base64');
}

/**
 * An observer stage for a pipeline: passes every byte through unchanged and
 * counts them and their CRC32C. The getters report what has passed so far;
 * read them after the pipeline has finished to get the totals.
 */
export class ChecksumMeter extends Transform {
  #bytes = 0;
  #crc = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#crc = crc32c(chunk, this.#crc);
    callback(null, chunk);
  }

  /** number of bytes that have passed through */
  get bytes(): number {
    return this.#bytes;
  }

  /** CRC32C of the bytes that have passed through, unsigned */
  get crc32c(): number {
    return this.#crc;
  }

  /** {@link crc32c} in GCS form (see {@link crc32cBase64}) */
  get base64(): string {
    return crc32cBase64(this.#crc);
  }
}
