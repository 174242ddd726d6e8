/**
 * Whether an object a create-only write ran into holds what the write would
 * have stored: the test behind "already archived with identical content".
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumMeter, crc32c, crc32cBase64 } from '../checksum/crc32c.ts';
import { verifyingStream } from '../checksum/verify.ts';
import { codecFromName } from '../codec/index.ts';
import { AlreadyExistsError, CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { CallOptions, ObjectInfo, Storage, WriteOptions } from './types.ts';

/** A size and a CRC32C (base64, big-endian, as GCS gives it). */
export interface Checksum {
  size: number;
  crc32c: string;
}

/** What this write had: its content's raw checksum, and the stored (compressed) bytes' when all of them were produced. */
export interface OurContent {
  raw: Checksum;
  stored?: Checksum;
}

/**
 * Whether `existing` holds exactly `ours.raw`, judged only from what the
 * storage itself computed, never from metadata a writer supplied (anyone
 * with object-create can write any metadata beside any bytes):
 * - the stored size and CRC32C equal those of the bytes this write produced:
 *   same bytes, same content;
 * - otherwise (a codec need not compress alike on another host or version,
 *   or this write did not produce all its bytes) the object is read back,
 *   its stored bytes checked against the storage's size and CRC32C, decoded
 *   with the codec it names, and the decoded size and CRC32C compared with
 *   `ours.raw`. Bytes that do not decode are not the same content.
 * Rejects with what the read raises otherwise (a storage or auth error).
 */
export async function holdsSameContent(storage: Storage, existing: ObjectInfo, ours: OurContent, options: CallOptions = {}): Promise<boolean> {
  if (ours.stored && existing.size === ours.stored.size && existing.crc32c === ours.stored.crc32c) return true;
  try {
    return sameChecksum(await decodedChecksum(storage, existing, options), ours.raw);
  } catch (err) {
    if (err instanceof CorruptObjectError) return false;
    throw err;
  }
}

function sameChecksum(a: Checksum, b: Checksum): boolean {
  return a.size === b.size && a.crc32c === b.crc32c;
}

/** Size and CRC32C of `existing` decoded, after its stored bytes are checked against the storage's own size and CRC32C. CorruptObjectError when they differ or do not decode. */
async function decodedChecksum(storage: Storage, existing: ObjectInfo, options: CallOptions): Promise<Checksum> {
  const codec = codecFromName(existing.metadata[Meta.codec], existing.key);
  const meter = new ChecksumMeter();
  const stored = await storage.read(existing.key, options);
  await pipeline(
    stored,
    verifyingStream({ size: existing.size, crc32c: existing.crc32c }, `stored bytes of ${existing.key}`),
    codec.decompressor(),
    meter,
    async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source) {
        // measured on the way
      }
    },
    { signal: options.signal },
  );
  return { size: meter.bytes, crc32c: meter.base64 };
}

/**
 * Create-only write of the bytes `chunks()` yields (called again to compare,
 * so it must yield the same bytes every time). An object already under
 * `key` holding exactly those bytes, by the storage's own size and CRC32C,
 * counts as written: it is the repeat of a write whose first attempt landed
 * though its answer was lost (a driver retries such a request and meets its
 * own object). Other content: the write's AlreadyExistsError.
 */
export async function writeOnce(storage: Storage, key: string, chunks: () => Iterable<Buffer>, options: WriteOptions = {}): Promise<ObjectInfo> {
  try {
    return await storage.write(key, Readable.from(chunks(), { objectMode: false }), options);
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const existing = await storage.stat(key, { signal: options.signal });
    let crc = 0;
    let size = 0;
    for (const chunk of chunks()) {
      crc = crc32c(chunk, crc);
      size += chunk.length;
    }
    if (existing && existing.size === size && existing.crc32c === crc32cBase64(crc)) return existing;
    throw err;
  }
}
