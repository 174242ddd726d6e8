/**
 * A local file's size and CRC32C, read once in 1 MiB chunks (the delta
 * restore's comparison with the manifest, the prefetch spool's check of a
 * spooled segment).
 */
import { createReadStream } from 'node:fs';
import { crc32c, crc32cBase64 } from './crc32c.ts';

/** Size and CRC32C (base64, as Cloud Storage and the manifest write it) of a whole file. */
export async function fileChecksum(file: string): Promise<{ size: number; crc32c: string }> {
  let crc = 0;
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    crc = crc32c(chunk as Buffer, crc);
    size += (chunk as Buffer).length;
  }
  return { size, crc32c: crc32cBase64(crc) };
}
