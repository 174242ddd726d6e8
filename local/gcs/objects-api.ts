/**
 * JSON API object calls: get (metadata), list, patch, update, delete.
 * Downloads are in download.ts, uploads in uploads.ts, compose and rewrite
 * in copy.ts.
 */
import { authorize, sendJson, type RequestContext } from './context.ts';
import { bucketNotFound, objectNotFound } from './errors.ts';
import { emitDeleted } from './finalize.ts';
import { listPage, parseListQuery } from './list.ts';
import { applyPatch, objectResource, WRITABLE_FIELDS } from './objects.ts';
import { checkPreconditions, parsePreconditions } from './preconditions.ts';
import { checkRetention } from './retention.ts';
import type { ObjectRecord } from './store.ts';
import { readJson } from './body.ts';

function requireBucket(ctx: RequestContext, bucket: string): void {
  if (!ctx.backend.store.bucket(bucket)) throw bucketNotFound(bucket);
}

/** The live object, honouring an explicit `generation` (no versioning: any other generation is gone). */
function current(ctx: RequestContext, bucket: string, name: string): ObjectRecord {
  const record = ctx.backend.store.get(bucket, name);
  const generation = ctx.url.searchParams.get('generation');
  if (!record || (generation !== null && generation !== '' && generation !== record.generation)) throw objectNotFound(bucket, name);
  return record;
}

/** GET /b/B/o/O: the object resource. */
export async function getObject(ctx: RequestContext, bucket: string, name: string): Promise<void> {
  authorize(ctx, 'storage.objects.get', bucket);
  requireBucket(ctx, bucket);
  const preconditions = parsePreconditions(ctx.url.searchParams);
  const record = current(ctx, bucket, name);
  checkPreconditions(preconditions, record);
  sendJson(ctx.res, objectResource(record, ctx.baseUrl));
}

/** GET /b/B/o: one page of the listing. */
export async function listObjects(ctx: RequestContext, bucket: string): Promise<void> {
  authorize(ctx, 'storage.objects.list', bucket, 'bucket');
  requireBucket(ctx, bucket);
  const { store } = ctx.backend;
  const page = listPage(store.names(bucket), parseListQuery(ctx.url.searchParams));
  const body: Record<string, unknown> = { kind: 'storage#objects' };
  const items = page.names.map((name) => store.get(bucket, name)).filter((r): r is ObjectRecord => r !== undefined);
  if (items.length > 0) body.items = items.map((record) => objectResource(record, ctx.baseUrl));
  if (page.prefixes.length > 0) body.prefixes = page.prefixes;
  if (page.nextPageToken) body.nextPageToken = page.nextPageToken;
  sendJson(ctx.res, body);
}

/**
 * PATCH (merge) or PUT (replace) /b/B/o/O: change writable metadata; bumps
 * metageneration. For PUT, writable fields absent from the body are cleared.
 */
export async function patchObject(ctx: RequestContext, bucket: string, name: string, replace: boolean): Promise<void> {
  authorize(ctx, 'storage.objects.update', bucket);
  requireBucket(ctx, bucket);
  const preconditions = parsePreconditions(ctx.url.searchParams);
  const body = await readJson(ctx.req);
  const { store } = ctx.backend;
  const record = await store.lock(bucket, name, async () => {
    const live = current(ctx, bucket, name);
    checkPreconditions(preconditions, live);
    ctx.backend.rateLimit?.check(bucket, name);
    let patch = body;
    if (replace && typeof body === 'object' && body !== null) {
      const full: Record<string, unknown> = { metadata: null };
      for (const field of WRITABLE_FIELDS) full[field] = null;
      const given = body as Record<string, unknown>;
      patch = { ...full, ...given, metadata: given.metadata ?? null };
      if (given.metadata && live.metadata) {
        // Replace, not merge: drop keys the new map does not have.
        const cleared: Record<string, unknown> = Object.fromEntries(Object.keys(live.metadata).map((k) => [k, null]));
        (patch as Record<string, unknown>).metadata = { ...cleared, ...(given.metadata as Record<string, unknown>) };
      }
    }
    const next = applyPatch(live, patch);
    next.metageneration = live.metageneration + 1;
    next.updated = new Date().toISOString();
    if (next.metadata && Object.keys(next.metadata).length === 0) delete next.metadata;
    await store.updateObject(next);
    ctx.backend.rateLimit?.record(bucket, name);
    return next;
  });
  sendJson(ctx.res, objectResource(record, ctx.baseUrl));
}

/** DELETE /b/B/o/O → 204. */
export async function deleteObject(ctx: RequestContext, bucket: string, name: string): Promise<void> {
  authorize(ctx, 'storage.objects.delete', bucket);
  requireBucket(ctx, bucket);
  const preconditions = parsePreconditions(ctx.url.searchParams);
  const { store } = ctx.backend;
  const removed = await store.lock(bucket, name, async () => {
    const live = current(ctx, bucket, name);
    checkPreconditions(preconditions, live);
    checkRetention(store.bucket(bucket)!, live);
    ctx.backend.rateLimit?.check(bucket, name);
    await store.remove(live);
    ctx.backend.rateLimit?.record(bucket, name);
    return live;
  });
  emitDeleted(ctx.backend, removed);
  ctx.res.writeHead(204, { 'Content-Length': 0 });
  ctx.res.end();
}
