/**
 * gcwal's one resumable uploader, for every object larger than one request:
 * a create-only (or generation-matched) session whose chunks go up as soon
 * as enough bytes have arrived, and whose last chunk carries the total size
 * and the CRC32C of every byte (x-goog-hash), which the server checks before
 * the object exists. So a byte damaged anywhere on the way means the object
 * never exists, rather than a damaged object found afterwards (which the
 * agent, without the delete right, could not remove). Memory stays bounded
 * by the chunk limit; a chunk that fails is resumed from the offset the
 * session reports; a failing source or an abort cancels the session.
 * GcsStorage.write decides the chunk sizes: the upload chunk size against
 * Cloud Storage, smaller chunks sent while the object is still produced
 * against a near endpoint. Wire format: docs/gcs-wire-format.md,
 * "Resumable upload".
 */
import type { Readable } from 'node:stream';
import { crc32c, crc32cBase64 } from '../../checksum/crc32c.ts';
import { checkStored, GcsHttpError, isTransientFailure, jsonAnswer, type Answer, type GcsHttpClient } from './http.ts';

/** Chunks other than the last are multiples of this (GCS's rule). */
export const CHUNK_QUANTUM = 256 * 1024;

export interface ResumableUploadOptions {
  /** `'0'`: create-only; else replace only this live generation */
  ifGenerationMatch: string;
  contentType?: string;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  /** the source is not read on while more than this many bytes are unacknowledged, which bounds memory; a multiple of CHUNK_QUANTUM and the largest chunk */
  chunkLimit: number;
  /** a chunk goes up once this many bytes wait (a multiple of CHUNK_QUANTUM, at most chunkLimit) */
  minChunk: number;
}

/**
 * Upload `head` (bytes already read from `source`) followed by the rest of
 * `source` as object `name`. Resolves with the object resource once the
 * server holds every byte and its `crc32c` matches ours. A chunk that fails
 * transiently (408, 429, 5xx, a dropped connection) is resumed from the
 * offset the session reports, up to the client's `retries` times (with its
 * backoff); any other failure, a source error or the signal rejects, cancels
 * the session (best effort) and leaves no object. A failed precondition is a
 * GcsHttpError 412, as for GcsHttpClient.upload; bytes the server received
 * other than those sent, a GcsHttpError 400 naming the CRC32C; a session the
 * server no longer knows (expired, or over after a failed finalisation whose
 * answer was lost), an UPLOAD_SESSION_GONE error, worth a new upload. Not
 * idempotent by itself: create-only is what makes a repeat safe.
 */
export async function uploadResumable(
  client: GcsHttpClient,
  bucket: string,
  name: string,
  head: readonly Buffer[],
  source: Readable,
  options: ResumableUploadOptions,
): Promise<Record<string, unknown>> {
  const held = new HeldBytes();
  for (const chunk of head) held.add(chunk);
  const waiters = new Waiters();
  let ended = false;
  let failure: { error: unknown } | undefined;
  let stopped = false;
  // The rest of the source comes in while chunks go up; it waits while more
  // than chunkLimit bytes are unacknowledged (then a chunk of chunkLimit
  // bytes can always go).
  const reading = (async () => {
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        held.add(chunk);
        waiters.wake();
        while (held.bytes > options.chunkLimit && !stopped) await waiters.next();
        if (stopped) return;
      }
      ended = true;
    } catch (err) {
      failure ??= { error: err };
    }
    waiters.wake();
  })();

  // An abort must not leave the loop below waiting for bytes that will not come.
  const onAbort = () => waiters.wake();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let session: string | undefined;
  try {
    const uri = await startSession(client, bucket, name, options);
    session = uri;
    let retriesLeft = client.retries;
    for (;;) {
      if (failure) throw failure.error;
      options.signal?.throwIfAborted();
      const final = ended;
      // An intermediate chunk leaves at least one byte behind, so the last
      // chunk is never empty.
      const size = final ? held.bytes : Math.min(options.chunkLimit, Math.floor((held.bytes - 1) / CHUNK_QUANTUM) * CHUNK_QUANTUM);
      if (!final && size < options.minChunk) {
        await waiters.next();
        continue;
      }
      const start = held.offset;
      const range = final ? `bytes ${start}-${start + size - 1}/${held.total}` : `bytes ${start}-${start + size - 1}/*`;
      const headers: Record<string, string> = { 'Content-Range': range };
      if (final) headers['X-Goog-Hash'] = `crc32c=${crc32cBase64(held.crc)}`;
      let answer: Answer;
      try {
        answer = await client.exchange({
          method: 'PUT',
          path: '',
          url: uri,
          headers,
          body: held.first(size),
          signal: options.signal,
          accept: [308],
          retry: false,
        });
      } catch (err) {
        if (!isTransientFailure(err) || retriesLeft <= 0 || options.signal?.aborted) throw sessionFailure(err, uri);
        await client.backoff(client.retries - retriesLeft, options.signal);
        retriesLeft--;
        // Where to go on from: the session says what it has persisted (or,
        // when the last chunk did land, answers with the object).
        answer = await client
          .exchange({ method: 'PUT', path: '', url: uri, headers: { 'Content-Range': 'bytes */*' }, body: [], signal: options.signal, accept: [308] })
          .catch((e: unknown) => {
            throw sessionFailure(e, uri);
          });
      }
      if (answer.status !== 308) return checkStored(jsonAnswer(answer), bucket, name, { crc32c: crc32cBase64(held.crc), size: held.total });
      const before = held.offset;
      held.acknowledge(persistedEnd(answer));
      // The budget is per chunk: a long upload is not failed by faults spread over it.
      if (held.offset > before) retriesLeft = client.retries;
      waiters.wake();
    }
  } catch (err) {
    stopped = true;
    waiters.wake();
    source.destroy();
    if (session !== undefined && !options.signal?.aborted) await cancelSession(client, session);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    stopped = true;
    waiters.wake();
    await reading;
  }
}

async function startSession(client: GcsHttpClient, bucket: string, name: string, options: ResumableUploadOptions): Promise<string> {
  const contentType = options.contentType ?? 'application/octet-stream';
  const query = `uploadType=resumable&ifGenerationMatch=${encodeURIComponent(options.ifGenerationMatch)}&name=${encodeURIComponent(name)}`;
  const answer = await client.exchange({
    method: 'POST',
    path: `/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?${query}`,
    headers: { 'Content-Type': 'application/json; charset=UTF-8', 'X-Upload-Content-Type': contentType },
    body: [Buffer.from(JSON.stringify({ name, contentType, metadata: options.metadata ?? {} }))],
    signal: options.signal,
  });
  const location = answer.headers.location;
  if (typeof location !== 'string' || location === '') throw new GcsHttpError(502, 'Cloud Storage started a resumable upload without a Location header');
  return location;
}

/**
 * A session PUT's failure as the caller should see it: a 404 or 410 means
 * the server no longer knows the session (docs/gcs-wire-format.md,
 * "Resumable upload"), which a new upload can get past; anything else as it
 * is.
 */
function sessionFailure(err: unknown, session: string): unknown {
  if (!(err instanceof GcsHttpError) || (err.code !== 404 && err.code !== 410)) return err;
  const id = /[?&]upload_id=([^&]{1,12})/.exec(session)?.[1] ?? '';
  return Object.assign(new Error(`the resumable upload session ${id}… is gone (HTTP ${err.code}: ${err.message})`, { cause: err }), {
    code: 'UPLOAD_SESSION_GONE',
  });
}

/** The end (exclusive) of what a 308 says the session holds: `Range: bytes=0-N`, or nothing yet. */
function persistedEnd(answer: Answer): number {
  const range = answer.headers.range;
  if (range === undefined) return 0;
  const m = /^bytes=0-(\d+)$/.exec(String(range).trim());
  if (!m) throw new GcsHttpError(502, `Cloud Storage answered a resumable chunk with an unreadable Range header: ${String(range)}`);
  return Number(m[1]) + 1;
}

/** Best effort: a cancelled session can never finalise (GCS answers 499). */
async function cancelSession(client: GcsHttpClient, session: string): Promise<void> {
  try {
    await client.exchange({ method: 'DELETE', path: '', url: session, accept: [499], retry: false });
  } catch {
    // An abandoned session expires on its own and never becomes an object.
  }
}

/** Bytes from the last acknowledged offset on, with the running size and CRC32C of everything added. */
class HeldBytes {
  #chunks: Buffer[] = [];
  /** bytes held */
  bytes = 0;
  /** object offset of the first held byte: what the session has acknowledged */
  offset = 0;
  /** bytes added in all */
  total = 0;
  /** CRC32C of every byte added */
  crc = 0;

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.bytes += chunk.length;
    this.total += chunk.length;
    this.crc = crc32c(chunk, this.crc);
  }

  /** The first `size` held bytes, as views (nothing copied). */
  first(size: number): Buffer[] {
    const out: Buffer[] = [];
    let need = size;
    for (const chunk of this.#chunks) {
      if (need === 0) break;
      const part = chunk.length <= need ? chunk : chunk.subarray(0, need);
      out.push(part);
      need -= part.length;
    }
    return out;
  }

  /** The session holds everything before `end`: let go of it. */
  acknowledge(end: number): void {
    if (end < this.offset) {
      // Bytes already let go of would have to be sent again.
      throw new GcsHttpError(503, `the upload session went back from ${this.offset} to ${end} bytes`);
    }
    let drop = Math.min(end - this.offset, this.bytes);
    this.offset += drop;
    this.bytes -= drop;
    while (drop > 0) {
      const chunk = this.#chunks[0]!;
      if (chunk.length <= drop) {
        this.#chunks.shift();
        drop -= chunk.length;
      } else {
        this.#chunks[0] = chunk.subarray(drop);
        drop = 0;
      }
    }
  }
}

/** Tasks waiting for "something changed"; wake() releases all of them. */
class Waiters {
  #pending: (() => void)[] = [];

  next(): Promise<void> {
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  wake(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const resolve of pending) resolve();
  }
}
