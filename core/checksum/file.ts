/**
 * Reading a local file once for its checksums (the delta restore's
 * comparison with the manifest, the prefetch spool's check of a spooled
 * segment): 1 MiB reads into two buffers used in turn, the next read under
 * way while the caller checksums the last one, so no buffer is allocated
 * per chunk and no stream machinery runs per read.
 */
import * as fs from 'node:fs/promises';
import { crc32c, crc32cBase64 } from './crc32c.ts';

const CHUNK = 1024 * 1024;

/**
 * Call `fn` with the bytes of `file` from its start, in order, up to `limit`
 * bytes (default: to its end). A chunk is valid only during the call: its
 * buffer is reused two reads later.
 */
export async function eachChunk(file: string, fn: (chunk: Buffer) => void, limit = Number.POSITIVE_INFINITY): Promise<void> {
  const fh = await fs.open(file, 'r');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let pending: Promise<{ bytesRead: number }> | undefined;
  try {
    let position = 0;
    let turn = 0;
    const readNext = () => (position < limit ? fh.read(buffers[turn], 0, Math.min(CHUNK, limit - position), position) : Promise.resolve({ bytesRead: 0 }));
    pending = readNext();
    for (;;) {
      const { bytesRead } = await pending;
      pending = undefined;
      if (bytesRead === 0) break;
      const chunk = buffers[turn].subarray(0, bytesRead);
      position += bytesRead;
      turn ^= 1;
      pending = readNext();
      fn(chunk);
    }
  } finally {
    // A read still under way writes into a buffer: let it end before the file closes.
    await pending?.catch(() => {});
    await fh.close();
  }
}

/** Size and CRC32C (base64, as Cloud Storage and the manifest write it) of a whole file. */
export async function fileChecksum(file: string): Promise<{ size: number; crc32c: string }> {
  let crc = 0;
  let size = 0;
  await eachChunk(file, (chunk) => {
    crc = crc32c(chunk, crc);
    size += chunk.length;
  });
  return { size, crc32c: crc32cBase64(crc) };
}
