/**
 * A part upload that ran into an object already under its key (a retried
 * upload whose earlier attempt did land, its answer lost): the part counts
 * as stored only when that object holds what this backup would store now,
 * judged by content (core/storage/same-content.ts), never by its metadata.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumMeter } from '../../core/checksum/crc32c.ts';
import { ConflictError } from '../../core/errors.ts';
import { holdsSameContent } from '../../core/storage/same-content.ts';
import type { ObjectInfo, Storage, WriteOptions } from '../../core/storage/types.ts';
import type { PlannedPart } from './plan.ts';
import { writePart, type PartWriterOptions, type WrittenPart } from './tar-parts.ts';

/**
 * The part under `options.key`, kept, when it holds exactly what `plan`
 * builds now: the part is built again (its files read again) into a sink
 * that only measures it, then compared with the stored object. Else
 * ConflictError: files changed between the attempts, or the object is
 * someone else's, and the backup stops before its backup.json.
 */
export async function adoptStoredPart(plan: PlannedPart, options: PartWriterOptions): Promise<WrittenPart> {
  const existing = await options.storage.stat(options.key, { signal: options.signal });
  const rebuilt = await writePart(plan, { ...options, storage: measuringSink(options.storage.url), onProgress: undefined });
  const ours = {
    raw: { size: rebuilt.part.rawSize, crc32c: rebuilt.part.rawCrc32c },
    stored: { size: rebuilt.part.storedSize, crc32c: rebuilt.part.storedCrc32c },
  };
  if (!existing || !(await holdsSameContent(options.storage, existing, ours, { signal: options.signal }))) {
    throw new ConflictError(
      `part ${plan.index} is already stored at ${options.key} with other content than this backup's`,
      'an earlier upload of the part landed and its files have changed since; run backup-push again (a new backup takes a new folder)',
    );
  }
  return { part: { ...rebuilt.part, storedSize: existing.size, storedCrc32c: existing.crc32c }, manifest: rebuilt.manifest };
}

/** A Storage that stores nothing: `write` reads its source to the end and reports the size and CRC32C it would have stored. */
function measuringSink(url: string): Storage {
  const none = (): never => {
    throw new Error('internal: a measuring sink only takes writes');
  };
  return {
    url,
    stat: none,
    read: none,
    list: none,
    delete: none,
    async write(key: string, source: Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
      const meter = new ChecksumMeter();
      await pipeline(
        source,
        meter,
        async (measured: AsyncIterable<Buffer>) => {
          for await (const _ of measured) {
            // counted on the way
          }
        },
        { signal: options.signal },
      );
      return { key, size: meter.bytes, crc32c: meter.base64, metadata: options.metadata ?? {}, created: new Date(), generation: '0' };
    },
  };
}
