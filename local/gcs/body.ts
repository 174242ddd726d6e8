/**
 * Receiving request bodies: small JSON bodies are buffered (with a limit);
 * object bytes are streamed to a file while their size, CRC32C and MD5 are
 * computed on the way, so no object is ever held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32c, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { ApiError, invalid } from './errors.ts';

/** Size and checksums of bytes received so far; updated as they arrive. */
export interface RunningHash {
  size: number;
  /** unsigned CRC32C */
  crc: number;
  md5: Hash;
}

/** A hash of no bytes. */
export function newHash(): RunningHash {
  return { size: 0, crc: 0, md5: createHash('md5') };
}

/** The final CRC32C and MD5 of `hash` in GCS's base64 form (the MD5 state is copied, not consumed). */
export function digests(hash: RunningHash): { crc32c: string; md5Hash: string } {
  return { crc32c: crc32cBase64(hash.crc), md5Hash: hash.md5.copy().digest('base64') };
}

function addToHash(hash: RunningHash, chunk: Buffer): void {
  hash.size += chunk.length;
  hash.crc = crc32c(chunk, hash.crc);
  hash.md5.update(chunk);
}

/** Recompute size and checksums from a file (after an interrupted append). */
export async function hashFile(file: string): Promise<RunningHash> {
  const hash = newHash();
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) addToHash(hash, chunk);
  return hash;
}

/**
 * A pass-through that drops the first `skip` bytes (already received in an
 * earlier attempt of a resumable chunk) and adds the rest to `hash`.
 */
export function hashing(hash: RunningHash, skip: number): Transform {
  let toSkip = skip;
  return new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      if (toSkip > 0) {
        if (chunk.length <= toSkip) {
          toSkip -= chunk.length;
          callback();
          return;
        }
        chunk = chunk.subarray(toSkip);
        toSkip = 0;
      }
      addToHash(hash, chunk);
      callback(null, chunk);
    },
  });
}

/** Bytes an upload may have in flight between the socket and the file. */
const INGEST_BUFFER = 4 * 1024 * 1024;

/**
 * Stream `source` into `file` (created, or appended to with `append`),
 * skipping its first `skip` bytes and adding the rest to `hash`. Rejects when
 * the source breaks off (a dropped connection): the caller must then not
 * treat the data as complete.
 */
export async function receiveToFile(
  source: Readable | AsyncIterable<Buffer>,
  file: string,
  hash: RunningHash,
  options: { append?: boolean; skip?: number } = {},
): Promise<void> {
  const readable = source instanceof Readable ? source : Readable.from(source, { objectMode: false });
  // Buffers of a few MiB, not streams' 16 KiB: a TLS body arrives in 16 KiB
  // records, and with the default every record's file write paused the
  // connection until libuv had written it (docs/performance.md).
  await pipeline(readable, hashing(hash, options.skip ?? 0), createWriteStream(file, { flags: options.append ? 'a' : 'w', highWaterMark: INGEST_BUFFER }));
}

/** Read a small body (JSON metadata) completely; 400 when it is larger than `limit`. */
export async function readSmallBody(req: IncomingMessage, limit = 2 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) throw new ApiError(413, 'uploadTooLarge', `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parse a JSON body; an empty body is `undefined`; 400 `parseError` when it is not JSON. */
export function parseJson(body: Buffer): unknown {
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'parseError', 'Parse Error');
  }
}

/** Read and parse a JSON request body. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  return parseJson(await readSmallBody(req));
}

/**
 * Parse `x-goog-hash: crc32c=…,md5=…` (also repeated headers). Returns the
 * base64 values the client claims; 400 when the header is malformed.
 */
export function parseGoogHash(header: string | string[] | undefined): { crc32c?: string; md5Hash?: string } {
  if (header === undefined) return {};
  const out: { crc32c?: string; md5Hash?: string } = {};
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    if (eq < 0) throw invalid(`Invalid x-goog-hash header: ${trimmed}`);
    const key = trimmed.slice(0, eq).toLowerCase();
    const value = trimmed.slice(eq + 1);
    if (key === 'crc32c') out.crc32c = value;
    else if (key === 'md5') out.md5Hash = value;
  }
  return out;
}

/** 400 unless the checksums the client claimed match what was received. */
export function verifyClaims(claims: { crc32c?: string; md5Hash?: string }, actual: { crc32c: string; md5Hash: string }): void {
  if (claims.crc32c !== undefined && normaliseB64(claims.crc32c) !== actual.crc32c) {
    throw invalid(`Provided CRC32C "${claims.crc32c}" doesn't match calculated CRC32C "${actual.crc32c}".`);
  }
  if (claims.md5Hash !== undefined && normaliseB64(claims.md5Hash) !== actual.md5Hash) {
    throw invalid(`Provided MD5 hash "${claims.md5Hash}" doesn't match calculated MD5 hash "${actual.md5Hash}".`);
  }
}

/** Base64 re-encoded from its bytes, so padding or url-safe variants compare equal. */
function normaliseB64(value: string): string {
  return Buffer.from(value, 'base64').toString('base64');
}
