import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { verifyingStream } from '../checksum/verify.ts';
import { codecFromName } from '../codec/index.ts';
import { CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { CallOptions, ObjectInfo, Storage } from './types.ts';

/** Raw size and CRC32C an object's metadata records for its uncompressed content. */
export function recordedRawChecksum(info: ObjectInfo): { size: number; crc32c: string } {
  const size = Number(info.metadata[Meta.rawSize]);
  const crc = info.metadata[Meta.rawCrc32c];
  if (!Number.isSafeInteger(size) || size < 0 || !crc) {
    throw new CorruptObjectError(
      `object ${info.key} lacks its raw size or crc32c metadata`,
      'the object was not written by gcwal or its metadata was lost; re-archive it from the source',
    );
  }
  return { size, crc32c: crc };
}

/**
 * Open an object written by gcwal and return its decoded content as a stream.
 * The stream fails with CorruptObjectError if the stored bytes do not match
 * the object's size/CRC32C, the codec rejects them, or the decoded bytes do
 * not match the raw size/CRC32C in its metadata. Consumers must treat the data
 * as unverified until the stream ends without error. With `native`, a native
 * decoder is used where one is installed (DecompressorOptions.native).
 */
export async function openDecoded(storage: Storage, info: ObjectInfo, options: CallOptions & { native?: boolean } = {}): Promise<Readable> {
  const codec = codecFromName(info.metadata[Meta.codec], info.key);
  const raw = recordedRawChecksum(info);
  const stored = await storage.read(info.key, { signal: options.signal });
  const out = verifyingStream(raw, `decoded content of ${info.key}`);
  // The callback form returns the last stream and destroys every stage with
  // the first error, so a consumer of `out` sees any stage's failure.
  // `out` checks every decoded byte against the raw CRC32C: the codec's own
  // checksums of decoded data (lzop's per-block CRC-32) would be a second pass.
  const decoder = codec.decompressor({ decodedVerifiedByCaller: true, native: options.native === true });
  pipeline(stored, verifyingStream({ size: info.size, crc32c: info.crc32c }, `stored bytes of ${info.key}`), decoder, out, () => {});
  return out;
}
