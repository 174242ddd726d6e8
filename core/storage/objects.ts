import { Readable } from 'node:stream';
import { CorruptObjectError } from '../errors.ts';
import type { CallOptions, ObjectInfo, Storage, WriteOptions } from './types.ts';

/**
 * Read a small object (metadata, identity) fully into memory. Refuses objects
 * over `limit` bytes so a damaged repository cannot blow up memory.
 * Throws NotFoundError when absent.
 */
export async function readSmallObject(storage: Storage, key: string, options: CallOptions & { limit?: number } = {}): Promise<Buffer> {
  const limit = options.limit ?? 64 * 1024 * 1024;
  const stream = await storage.read(key, { signal: options.signal });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      stream.destroy();
      throw new CorruptObjectError(`object ${key} is larger than ${limit} bytes`, 'this is not a gcwal metadata object; check the repository');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Create-only write of an in-memory buffer (see Storage.write). */
export function writeSmallObject(storage: Storage, key: string, body: Buffer | string, options: WriteOptions = {}): Promise<ObjectInfo> {
  return storage.write(key, Readable.from([Buffer.from(body)]), options);
}
