/**
 * PUT <session URI>: the data and status requests of a resumable upload.
 *
 * `Content-Range` forms:
 * - `bytes a-b/*`: an intermediate chunk → 308 with `Range: bytes=0-N`;
 * - `bytes a-b/T`, `bytes a-*\/T`: a chunk of a T-byte object, final when
 *   the persisted bytes reach T;
 * - `bytes a-*\/*` (or no header): everything from a to the end of this body
 *   is the rest of the object;
 * - `bytes *\/*`, `bytes *\/T`: a status query → 308 (with `Range` only when
 *   bytes were persisted), or the object once complete.
 * A chunk that starts before the persisted end (a re-send after a lost
 * response) has its already-persisted bytes skipped. A session is finalised
 * only when it is complete: a body that breaks off keeps the bytes that made
 * it to disk and waits for the client to resume.
 */
import { hashFile, newHash, parseGoogHash } from './body.ts';
import { sendJson, type RequestContext } from './context.ts';
import { ApiError, invalid } from './errors.ts';
import { finalizeObject } from './finalize.ts';
import { objectResource } from './objects.ts';
import { receiveToFile } from './body.ts';
import type { Session } from './sessions.ts';

/** A parsed Content-Range of a session PUT. */
export type ChunkRange = { kind: 'query'; total?: number } | { kind: 'data'; start: number; end?: number; total?: number; final: boolean };

/** Parse the Content-Range of a session PUT; an absent header means "the whole object". */
export function parseChunkRange(header: string | undefined): ChunkRange {
  if (header === undefined || header.trim() === '') return { kind: 'data', start: 0, final: true };
  const query = /^\s*bytes\s+\*\/(\*|\d+)\s*$/i.exec(header);
  if (query) return { kind: 'query', total: query[1] === '*' ? undefined : Number(query[1]) };
  // `bytes 0--1/0` is how the Node client finalises an empty upload in chunked mode.
  const data = /^\s*bytes\s+(\d+)-(-1|\d+|\*)\/(\*|\d+)\s*$/i.exec(header);
  if (!data) throw invalid(`Invalid Content-Range header: ${header}`);
  const start = Number(data[1]);
  const end = data[2] === '*' ? undefined : Number(data[2]);
  const total = data[3] === '*' ? undefined : Number(data[3]);
  const emptyFinal = end !== undefined && end === start - 1 && total === start;
  if (end !== undefined && end < start && !emptyFinal) throw invalid(`Invalid Content-Range header: ${header}`);
  return { kind: 'data', start, end, total, final: total !== undefined || end === undefined };
}

function send308(ctx: RequestContext, session: Session): void {
  const headers: Record<string, string | number> = { 'Content-Length': 0, 'X-GUploader-UploadID': session.id };
  if (session.hash.size > 0) headers.Range = `bytes=0-${session.hash.size - 1}`;
  ctx.res.writeHead(308, headers);
  ctx.res.end();
}

function notFound(id: string): ApiError {
  return new ApiError(404, 'notFound', `No such upload session: ${id}`);
}

/** Drain what is left of the request body (so the connection stays usable). */
async function drain(ctx: RequestContext): Promise<void> {
  for await (const _ of ctx.req) {
    // discard
  }
}

/** Handle a PUT (data or status query) to resumable session `id`. */
export async function handleSessionPut(ctx: RequestContext, id: string): Promise<void> {
  const { sessions } = ctx.backend;
  if (!sessions.get(id)) throw notFound(id);
  await sessions.exclusive(id, async () => {
    const session = sessions.get(id);
    if (!session) throw notFound(id);
    const range = parseChunkRange(ctx.req.headers['content-range']);
    if (session.done) {
      await drain(ctx);
      sendJson(ctx.res, objectResource(session.done, ctx.baseUrl));
      return;
    }
    if (range.kind === 'query') {
      await drain(ctx);
      if (range.total !== undefined && session.hash.size === range.total) return finish(ctx, session);
      return send308(ctx, session);
    }
    if (range.start > session.hash.size) {
      await drain(ctx);
      throw invalid(
        `Invalid request. According to the Content-Range header, the upload offset is ${range.start} byte(s), which exceeds already uploaded size of ${session.hash.size} byte(s).`,
      );
    }
    try {
      await receiveToFile(ctx.req, session.tempFile, session.hash, { append: true, skip: session.hash.size - range.start });
    } catch (err) {
      // Some of the body may have reached the file: recount from what is there.
      session.hash = await hashFile(session.tempFile).catch(() => newHash());
      throw err;
    }
    const total = range.total ?? (range.final ? session.hash.size : undefined);
    if (total === undefined || session.hash.size < total) return send308(ctx, session);
    if (session.hash.size > total) {
      throw invalid(`Invalid request. The upload has ${session.hash.size} bytes, more than the declared total of ${total}.`);
    }
    return finish(ctx, session);
  });
}

async function finish(ctx: RequestContext, session: Session): Promise<void> {
  const { backend } = ctx;
  try {
    session.done = await finalizeObject(backend, {
      bucket: session.bucket,
      name: session.name,
      tempFile: session.tempFile,
      hash: session.hash,
      insert: session.insert,
      fallbackContentType: session.fallbackContentType,
      preconditions: session.preconditions,
      identity: session.identity,
      headerClaims: parseGoogHash(ctx.req.headers['x-goog-hash']),
      expectedSize: session.expectedSize,
    });
  } catch (err) {
    // A session that fails to finalise (precondition, checksum, permission) is over, as on GCS.
    await backend.sessions.discard(session.id);
    throw err;
  }
  sendJson(ctx.res, objectResource(session.done, ctx.baseUrl));
}

/** DELETE <session URI>: cancel the upload (GCS answers 499). */
export async function handleSessionDelete(ctx: RequestContext, id: string): Promise<void> {
  const { sessions } = ctx.backend;
  if (!sessions.get(id)) throw notFound(id);
  await sessions.exclusive(id, () => sessions.discard(id));
  ctx.res.writeHead(499, { 'Content-Length': 0 });
  ctx.res.end();
}
