/**
 * How the gs:// driver writes an object: three named upload strategies, all
 * through the one HTTP client (http.ts), chosen by how much the source holds
 * and how near the endpoint is. The driver (storage.ts) maps what they throw.
 */
import type { Readable } from 'node:stream';
import type { GcsHttpClient } from './http.ts';
import { uploadResumable } from './resumable.ts';
import { takeHead } from './take-head.ts';
/**
 * Writes are streamed (sent while the source still produces) when the
 * endpoint has answered a request within this many milliseconds: a local
 * emulator or proxy. Cloud Storage itself takes tens of milliseconds per
 * request, where full chunks after the bytes are in are quicker.
 */
export const STREAM_TURNAROUND_MS = 10;
/** A streamed write starts its session once this many bytes are in and the source goes on, and sends chunks of at least this size. */
export const STREAM_FROM = 2 * 1024 * 1024;

/**
 * How writeObject sends an object:
 * - `single-request`: it ended within the first chunk, so it goes up in one
 *   multipart request carrying its CRC32C;
 * - `chunked`: larger, against Cloud Storage: a resumable session
 *   (resumable.ts) in chunks of the chunk size;
 * - `streamed`: larger, against a near endpoint: the same session, started
 *   after STREAM_FROM bytes and sent in smaller chunks as the bytes come.
 * Every one of them has the server check the CRC32C and size before the
 * object exists.
 */
export type UploadStrategy = 'single-request' | 'chunked' | 'streamed';

/** What write reads before it decides, and the smallest chunk a resumable upload sends, for an endpoint near or not. */
export function uploadSizes(chunkSize: number, near: boolean): { head: number; minChunk: number } {
  return near ? { head: Math.min(STREAM_FROM, chunkSize), minChunk: Math.min(STREAM_FROM, chunkSize) } : { head: chunkSize, minChunk: chunkSize };
}

export interface WriteObjectOptions {
  /** `'0'`: create-only; else replace only this live generation */
  ifGenerationMatch: string;
  contentType: string;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  /** the resumable upload's largest chunk (a multiple of CHUNK_QUANTUM); bounds memory per write */
  chunkSize: number;
  /** the endpoint answers within the streaming turnaround (STREAM_TURNAROUND_MS by default) */
  near: boolean;
}

/** The strategy for an object whose first bytes are read: whether it ended within them, and whether the endpoint is near. */
export function chooseUploadStrategy(ended: boolean, near: boolean): UploadStrategy {
  return ended ? 'single-request' : near ? 'streamed' : 'chunked';
}

/**
 * Write `source` as object `name` with the strategy its size and the
 * endpoint call for; resolves with the object resource the server returned
 * once it has checked the CRC32C and size. Throws what GcsHttpClient and
 * uploadResumable throw (GcsHttpError, network errors), or the source's error.
 */
export async function writeObject(
  http: GcsHttpClient,
  bucket: string,
  name: string,
  source: Readable,
  options: WriteObjectOptions,
): Promise<Record<string, unknown>> {
  const sizes = uploadSizes(options.chunkSize, options.near);
  const head = await takeHead(source, sizes.head, options.signal);
  const strategy = chooseUploadStrategy(head.ended, options.near);
  const object = { ifGenerationMatch: options.ifGenerationMatch, contentType: options.contentType, metadata: options.metadata, signal: options.signal };
  if (strategy === 'single-request') {
    options.signal?.throwIfAborted();
    return http.upload(bucket, name, head.chunks, object);
  }
  return uploadResumable(http, bucket, name, head.chunks, source, { ...object, chunkLimit: options.chunkSize, minChunk: sizes.minChunk });
}
