/**
 * POST /upload/storage/v1/b/B/o: the three upload types.
 * - `multipart`: JSON metadata part + media part in one body (Node client
 *   with resumable:false, gcloud for small files);
 * - `media`: the raw bytes, name in the query (pgBackRest for small files);
 * - `resumable`: starts a session (see resumable.ts) and answers with its
 *   absolute URI in `Location` and its id in `X-GUploader-UploadID`.
 * Without `uploadType`, a multipart Content-Type means multipart, anything
 * else media.
 */
import * as fs from 'node:fs/promises';
import { newHash, parseGoogHash, parseJson, readSmallBody, receiveToFile, type RunningHash } from './body.ts';
import { authorize, sendJson, type RequestContext } from './context.ts';
import { bucketNotFound, invalid, required } from './errors.ts';
import { checkObjectName, finalizeObject } from './finalize.ts';
import { boundaryOf, parseMultipart } from './multipart.ts';
import { encodeName, objectResource, parseInsertMetadata } from './objects.ts';
import { parsePreconditions } from './preconditions.ts';

/** Handle an upload POST for `bucket`. */
export async function handleUploadPost(ctx: RequestContext, bucket: string): Promise<void> {
  const { req, url, backend } = ctx;
  const contentType = req.headers['content-type'];
  const uploadType = url.searchParams.get('uploadType') ?? (boundaryOf(contentType) ? 'multipart' : 'media');
  authorize(ctx, 'storage.objects.create', bucket);
  if (!backend.store.bucket(bucket)) throw bucketNotFound(bucket);
  const preconditions = parsePreconditions(url.searchParams);
  switch (uploadType) {
    case 'multipart':
      return multipart(ctx, bucket, preconditions);
    case 'media':
      return media(ctx, bucket, preconditions);
    case 'resumable':
      return startResumable(ctx, bucket, preconditions);
    default:
      throw invalid(`Invalid upload type: ${uploadType}`);
  }
}

/** Receive the object bytes into `tempFile`; on a broken body remove what arrived and rethrow. */
async function receiveOrDiscard(source: Parameters<typeof receiveToFile>[0], tempFile: string, hash: RunningHash): Promise<void> {
  try {
    await receiveToFile(source, tempFile, hash);
  } catch (err) {
    await fs.rm(tempFile, { force: true });
    throw err;
  }
}

async function multipart(ctx: RequestContext, bucket: string, preconditions: ReturnType<typeof parsePreconditions>): Promise<void> {
  const { req, url, backend } = ctx;
  const boundary = boundaryOf(req.headers['content-type']);
  if (!boundary) throw invalid('Invalid multipart request: Content-Type has no boundary');
  const { head, media } = await parseMultipart(req, boundary);
  const insert = parseInsertMetadata(parseJson(head.metadata));
  const name = url.searchParams.get('name') ?? insert.name;
  checkObjectName(name);
  const tempFile = backend.store.tempPath();
  const hash = newHash();
  await receiveOrDiscard(media, tempFile, hash);
  const record = await finalizeObject(backend, {
    bucket,
    name,
    tempFile,
    hash,
    insert,
    fallbackContentType: head.mediaHeaders['content-type'],
    preconditions,
    identity: ctx.identity,
    headerClaims: parseGoogHash(req.headers['x-goog-hash']),
  });
  sendJson(ctx.res, objectResource(record, ctx.baseUrl));
}

async function media(ctx: RequestContext, bucket: string, preconditions: ReturnType<typeof parsePreconditions>): Promise<void> {
  const { req, url, backend } = ctx;
  const name = url.searchParams.get('name');
  if (name === null) throw required('Required parameter: name');
  checkObjectName(name);
  const tempFile = backend.store.tempPath();
  const hash = newHash();
  await receiveOrDiscard(req, tempFile, hash);
  const record = await finalizeObject(backend, {
    bucket,
    name,
    tempFile,
    hash,
    insert: { fields: {} },
    fallbackContentType: req.headers['content-type'],
    preconditions,
    identity: ctx.identity,
    headerClaims: parseGoogHash(req.headers['x-goog-hash']),
  });
  sendJson(ctx.res, objectResource(record, ctx.baseUrl));
}

async function startResumable(ctx: RequestContext, bucket: string, preconditions: ReturnType<typeof parsePreconditions>): Promise<void> {
  const { req, url, backend } = ctx;
  const insert = parseInsertMetadata(parseJson(await readSmallBody(req)));
  const name = url.searchParams.get('name') ?? insert.name;
  checkObjectName(name);
  const lengthHeader = req.headers['x-upload-content-length'];
  let expectedSize: number | undefined;
  if (typeof lengthHeader === 'string' && lengthHeader !== '') {
    if (!/^\d+$/.test(lengthHeader)) throw invalid(`Invalid X-Upload-Content-Length: ${lengthHeader}`);
    expectedSize = Number(lengthHeader);
  }
  const uploadContentType = req.headers['x-upload-content-type'];
  const session = backend.sessions.create({
    bucket,
    name,
    insert,
    fallbackContentType: typeof uploadContentType === 'string' ? uploadContentType : undefined,
    expectedSize,
    preconditions,
    identity: ctx.identity,
    tempFile: backend.store.tempPath(),
  });
  // Absolute, from the host the client used: the Node client and gcloud PUT to
  // exactly this URL; pgBackRest builds the same URL from the upload id.
  const location = `${ctx.baseUrl}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&name=${encodeName(name)}&upload_id=${session.id}`;
  ctx.res.writeHead(200, {
    Location: location,
    'X-GUploader-UploadID': session.id,
    'Content-Length': 0,
    'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate',
  });
  ctx.res.end();
}
