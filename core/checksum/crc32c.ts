/**
 * CRC32C (Castagnoli), the checksum GCS keeps for every object. Computed with
 * `fast-crc32c` (SSE4.2 when the CPU has it, a table-driven fallback
 * otherwise) so checksumming never limits archive throughput.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';

// fast-crc32c is a native addon that costs a few milliseconds to load; it is
// loaded on first use so commands that never hash stay inside the CLI's
// start-up budget.
const require = createRequire(import.meta.url);

interface FastCrc32c {
  calculate(data: Buffer | string, initial?: number): number;
}

/** The addon fast-crc32c wraps (sse4_crc32's), as it exports itself. */
interface Sse4Binding {
  hardware_support: boolean;
  sse42_crc: FastCrc32c['calculate'];
  table_crc: FastCrc32c['calculate'];
}

/** CRC32C of this string, the check fast-crc32c itself makes of an implementation. */
const CHECK = { text: 'The quick brown fox jumps over the lazy dog', crc: 0x22620404 };

/**
 * fast-crc32c's hardware implementation, loaded straight from sse4_crc32's
 * build directory: the packages find it through `bindings`, which tries
 * path after path (most of what a first require costs, on every wal-push
 * and wal-fetch; docs/performance.md). Falls back to the package's own
 * loader when the addon is not where npm builds it or is not what this
 * expects.
 */
export function loadCrc32c(): FastCrc32c {
  try {
    const fromFast = createRequire(require.resolve('fast-crc32c/package.json'));
    const addon = path.join(path.dirname(fromFast.resolve('sse4_crc32/package.json')), 'build', 'Release', 'crc32c.node');
    const binding = require(addon) as Partial<Sse4Binding>;
    const calculate = binding.hardware_support ? binding.sse42_crc : binding.table_crc;
    if (typeof calculate === 'function' && calculate(CHECK.text) === CHECK.crc) return { calculate };
  } catch {
    // not laid out as npm builds it: the package's loader knows better
  }
  return require('fast-crc32c') as FastCrc32c;
}

/** loadCrc32c, once: the implementation is immutable, only its loading is deferred. */
const implementation = ((): (() => FastCrc32c) => {
  let loaded: FastCrc32c | undefined;
  return () => (loaded ??= loadCrc32c());
})();

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
