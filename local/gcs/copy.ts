/**
 * Server-side object creation from other objects: compose (concatenate up to
 * 32 sources) and rewrite/copy. Bytes are streamed file to file through the
 * same checksum computation as uploads, and the result is committed by
 * finalizeObject, so preconditions, retention and events behave as for any
 * other write. Done in one call (rewrite never hands back a rewriteToken).
 */
import * as fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { newHash, readJson, receiveToFile } from './body.ts';
import { authorize, sendJson, type RequestContext } from './context.ts';
import { bucketNotFound, invalid, objectNotFound, required } from './errors.ts';
import { checkObjectName, finalizeObject } from './finalize.ts';
import { objectResource, parseInsertMetadata, WRITABLE_FIELDS, type InsertMetadata } from './objects.ts';
import { checkPreconditions, parsePreconditions } from './preconditions.ts';
import { Store, type ObjectRecord } from './store.ts';

const MAX_COMPONENTS = 32;

/** Append the bytes of bucket/name (optionally a required generation) to `tempFile`. */
async function appendObject(
  ctx: RequestContext,
  bucket: string,
  name: string,
  tempFile: string,
  hash: ReturnType<typeof newHash>,
  check: (record: ObjectRecord) => void,
): Promise<ObjectRecord> {
  const opened = await ctx.backend.store.openData(bucket, name);
  if (!opened) throw objectNotFound(bucket, name);
  try {
    check(opened.record);
  } catch (err) {
    await opened.fd.close();
    throw err;
  }
  if (opened.record.size === 0) {
    await opened.fd.close();
    await receiveToFile(Readable.from([]), tempFile, hash, { append: true });
  } else {
    await receiveToFile(Store.stream(opened.fd, 0, opened.record.size - 1), tempFile, hash, { append: true });
  }
  return opened.record;
}

/** The destination metadata when none is given: the source's writable fields. */
function inheritedMetadata(source: ObjectRecord): InsertMetadata {
  const fields: InsertMetadata['fields'] = {};
  for (const field of WRITABLE_FIELDS) if (source[field] !== undefined) fields[field] = source[field];
  return { fields, metadata: source.metadata ? { ...source.metadata } : undefined };
}

/** POST /b/B/o/DEST/compose. */
export async function composeObject(ctx: RequestContext, bucket: string, name: string): Promise<void> {
  authorize(ctx, 'storage.objects.get', bucket);
  authorize(ctx, 'storage.objects.create', bucket);
  if (!ctx.backend.store.bucket(bucket)) throw bucketNotFound(bucket);
  checkObjectName(name);
  const preconditions = parsePreconditions(ctx.url.searchParams);
  const body = (await readJson(ctx.req)) as { destination?: unknown; sourceObjects?: unknown } | undefined;
  const sources = body?.sourceObjects;
  if (!Array.isArray(sources) || sources.length === 0) throw required('Required: sourceObjects');
  if (sources.length > MAX_COMPONENTS) throw invalid(`The number of source components provided (${sources.length}) exceeds the maximum (${MAX_COMPONENTS}).`);
  const insert = parseInsertMetadata(body?.destination ?? {});
  const tempFile = ctx.backend.store.tempPath();
  const hash = newHash();
  let componentCount = 0;
  try {
    for (const source of sources as { name?: unknown; generation?: unknown; objectPreconditions?: { ifGenerationMatch?: unknown } }[]) {
      if (typeof source?.name !== 'string') throw required('Required: sourceObjects.name');
      const record = await appendObject(ctx, bucket, source.name, tempFile, hash, (record) => {
        if (source.generation !== undefined && String(source.generation) !== record.generation) throw objectNotFound(bucket, source.name as string);
        const want = source.objectPreconditions?.ifGenerationMatch;
        if (want !== undefined) checkPreconditions({ ifGenerationMatch: String(want) }, record);
      });
      componentCount += record.componentCount ?? 1;
    }
  } catch (err) {
    await fs.rm(tempFile, { force: true });
    throw err;
  }
  const record = await finalizeObject(ctx.backend, {
    bucket,
    name,
    tempFile,
    hash,
    insert,
    preconditions,
    identity: ctx.identity,
    composite: { componentCount },
  });
  sendJson(ctx.res, objectResource(record, ctx.baseUrl));
}

/** POST /b/SB/o/SO/rewriteTo/b/DB/o/DO (`rewrite`) or …/copyTo/… (`copy`). */
export async function rewriteObject(
  ctx: RequestContext,
  src: { bucket: string; name: string },
  dst: { bucket: string; name: string },
  kind: 'rewrite' | 'copy',
): Promise<void> {
  const { store } = ctx.backend;
  const query = ctx.url.searchParams;
  authorize(ctx, 'storage.objects.get', src.bucket);
  authorize(ctx, 'storage.objects.create', dst.bucket);
  if (!store.bucket(src.bucket)) throw bucketNotFound(src.bucket);
  if (!store.bucket(dst.bucket)) throw bucketNotFound(dst.bucket);
  checkObjectName(dst.name);
  const preconditions = parsePreconditions(query);
  const sourcePreconditions = parsePreconditions(
    new URLSearchParams([...query.entries()].filter(([k]) => k.startsWith('ifSource')).map(([k, v]) => [k.replace('ifSource', 'if'), v])),
  );
  const body = await readJson(ctx.req);
  const tempFile = store.tempPath();
  const hash = newHash();
  let source: ObjectRecord;
  try {
    source = await appendObject(ctx, src.bucket, src.name, tempFile, hash, (record) => {
      const generation = query.get('sourceGeneration');
      if (generation && generation !== record.generation) throw objectNotFound(src.bucket, src.name);
      checkPreconditions(sourcePreconditions, record);
    });
  } catch (err) {
    await fs.rm(tempFile, { force: true });
    throw err;
  }
  const given = body && typeof body === 'object' && Object.keys(body).length > 0 ? parseInsertMetadata(body) : undefined;
  const insert = given ?? inheritedMetadata(source);
  const record = await finalizeObject(ctx.backend, {
    bucket: dst.bucket,
    name: dst.name,
    tempFile,
    hash,
    insert,
    fallbackContentType: source.contentType,
    preconditions,
    identity: ctx.identity,
  });
  const resource = objectResource(record, ctx.baseUrl);
  if (kind === 'copy') return sendJson(ctx.res, resource);
  sendJson(ctx.res, {
    kind: 'storage#rewriteResponse',
    totalBytesRewritten: String(record.size),
    objectSize: String(record.size),
    done: true,
    resource,
  });
}
