/**
 * Whether an object a create-only write ran into holds what the write would
 * have stored: the test behind "already archived with identical content".
 */
import { pipeline } from 'node:stream/promises';
import { ChecksumMeter } from '../checksum/crc32c.ts';
import { verifyingStream } from '../checksum/verify.ts';
import { codecFromName } from '../codec/index.ts';
import { CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { CallOptions, ObjectInfo, Storage } from './types.ts';

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
  await pipeline(stored, verifyingStream({ size: existing.size, crc32c: existing.crc32c }, `stored bytes of ${existing.key}`), codec.decompressor(), meter, async (source: AsyncIterable<Buffer>) => {
    for await (const _ of source) {
      // measured on the way
    }
  }, { signal: options.signal });
  return { size: meter.bytes, crc32c: meter.base64 };
}
