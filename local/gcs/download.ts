/**
 * Object downloads (`?alt=media` and `/download/storage/v1/b/B/o/O`):
 * single byte ranges (`bytes=S-E`, `bytes=S-`, `bytes=-N`) answered with 206
 * and `Content-Range`, 416 when unsatisfiable, and the headers clients use
 * to verify what they got (`x-goog-hash`, `x-goog-stored-content-encoding`,
 * `x-goog-stored-content-length`, generation, etag). Bytes are streamed from
 * the file of the generation that was live when the request arrived.
 */
import { pipeline } from 'node:stream/promises';
import { authorize, type RequestContext } from './context.ts';
import { ApiError, objectNotFound, bucketNotFound, textError } from './errors.ts';
import { etagOf } from './objects.ts';
import { checkPreconditions, parsePreconditions } from './preconditions.ts';
import { Store, type ObjectRecord } from './store.ts';

/** The byte range to send, inclusive; undefined = the whole object. */
export type ByteRange = { start: number; end: number } | undefined;

/**
 * Resolve a `Range` header against an object of `size` bytes. Malformed or
 * multi-range headers are ignored (the whole object is sent, as RFC 9110
 * allows); an unsatisfiable range is 416 with `Content-Range: bytes *\/size`.
 * On an empty object every range yields the (empty) whole object.
 */
export function resolveRange(header: string | undefined, size: number): ByteRange {
  if (!header) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (size === 0) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (match[2] !== '' && Number(match[2]) < start) return undefined;
    if (start >= size) throw unsatisfiable(size);
  }
  return { start, end };
}

function unsatisfiable(size: number): ApiError {
  return new ApiError(416, 'requestedRangeNotSatisfiable', 'The requested range cannot be satisfied.', { 'Content-Range': `bytes */${size}` });
}

/** The headers GCS sends with an object's bytes (whatever range is sent). */
export function mediaHeaders(record: ObjectRecord): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': record.contentType,
    'Accept-Ranges': 'bytes',
    ETag: etagOf(record),
    'Last-Modified': new Date(record.updated).toUTCString(),
    'Cache-Control': record.cacheControl ?? 'no-cache, no-store, max-age=0, must-revalidate',
    'x-goog-hash': record.md5Hash ? `crc32c=${record.crc32c},md5=${record.md5Hash}` : `crc32c=${record.crc32c}`,
    'x-goog-generation': record.generation,
    'x-goog-metageneration': String(record.metageneration),
    'x-goog-stored-content-encoding': record.contentEncoding ?? 'identity',
    'x-goog-stored-content-length': String(record.size),
    'x-goog-storage-class': 'STANDARD',
  };
  if (record.contentEncoding) headers['Content-Encoding'] = record.contentEncoding;
  if (record.contentDisposition) headers['Content-Disposition'] = record.contentDisposition;
  if (record.contentLanguage) headers['Content-Language'] = record.contentLanguage;
  for (const [key, value] of Object.entries(record.metadata ?? {})) {
    // Header values must be visible ASCII; GCS percent-encodes the rest, so do we.
    if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) headers[`x-goog-meta-${key}`] = /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
  }
  return headers;
}

/** Handle GET (or HEAD) of an object's bytes. */
export async function handleDownload(ctx: RequestContext, bucket: string, name: string): Promise<void> {
  const { req, res, url, backend } = ctx;
  authorize(ctx, 'storage.objects.get', bucket);
  if (!backend.store.bucket(bucket)) throw bucketNotFound(bucket);
  const preconditions = parsePreconditions(url.searchParams);
  const opened = await backend.store.openData(bucket, name);
  // GCS answers a media download of a missing object in text, not JSON.
  if (!opened) throw textError(objectNotFound(bucket, name));
  const { record, fd } = opened;
  let range: ByteRange;
  try {
    const generation = url.searchParams.get('generation');
    if (generation !== null && generation !== '' && generation !== record.generation) throw textError(objectNotFound(bucket, name));
    checkPreconditions(preconditions, record);
    range = resolveRange(req.headers.range, record.size);
  } catch (err) {
    await fd.close();
    throw err;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size - 1;
  const length = end - start + 1;
  const headers: Record<string, string | number> = { ...mediaHeaders(record), 'Content-Length': length };
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${record.size}`;
  res.writeHead(range ? 206 : 200, headers);
  if (ctx.fault?.kind === 'reset-download') {
    // Headers and part of the body, then the connection goes away mid-transfer.
    const part = Math.min(Math.floor(length / 2), 1024 * 1024);
    if (part > 0 && req.method !== 'HEAD') await pipeline(Store.stream(fd, start, start + part - 1), res, { end: false });
    else await fd.close();
    res.flushHeaders();
    await resetAfterFlush(ctx);
    return;
  }
  if (req.method === 'HEAD' || length === 0) {
    await fd.close();
    res.end();
    return;
  }
  await pipeline(Store.stream(fd, start, end), res);
}

/** Destroy the connection once everything written so far has reached the socket. */
async function resetAfterFlush(ctx: RequestContext): Promise<void> {
  const socket = ctx.res.socket ?? ctx.req.socket;
  await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
  socket.destroy();
}
