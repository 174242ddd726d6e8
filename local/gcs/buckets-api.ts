/**
 * JSON API bucket calls: list (minimal), insert, get, patch (retention
 * policy only), delete (empty buckets only).
 */
import { readJson } from './body.ts';
import { authorize, sendJson, type RequestContext } from './context.ts';
import { ApiError, bucketNotFound, invalid, required } from './errors.ts';
import { bucketResource } from './objects.ts';
import type { BucketRecord, Store } from './store.ts';

/** GCS's bucket naming rules, abridged: 3-63 (222 with dots) of [a-z0-9-_.], starting and ending alphanumeric. */
export function checkBucketName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') throw required('Required: name');
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(name) || (!name.includes('.') && name.length > 63)) {
    throw invalid(`Invalid bucket name: '${name}'`);
  }
}

/** Parse `retentionPolicy.retentionPeriod` (seconds, string or number); null/absent = none. */
function retentionPeriodOf(policy: unknown): number | undefined {
  if (policy === undefined || policy === null) return undefined;
  const period = (policy as { retentionPeriod?: unknown }).retentionPeriod;
  if (period === undefined || period === null) return undefined;
  if (!/^\d+$/.test(String(period))) throw invalid(`Invalid retentionPolicy.retentionPeriod: ${String(period)}`);
  return Number(period);
}

/**
 * Create `name` (idempotent). Used by the emulator's createBucket() and by
 * bucket insert, which reports 409 itself when the bucket existed.
 */
export async function createBucketRecord(
  store: Store,
  name: string,
  options: { retentionPeriodSeconds?: number; location?: string } = {},
): Promise<{ record: BucketRecord; created: boolean }> {
  checkBucketName(name);
  const now = new Date().toISOString();
  const record: BucketRecord = { name, timeCreated: now, updated: now, location: (options.location ?? 'US').toUpperCase(), metageneration: 1 };
  if (options.retentionPeriodSeconds) {
    record.retentionPeriod = options.retentionPeriodSeconds;
    record.retentionEffectiveTime = now;
  }
  return store.createBucket(record);
}

/** GET /b?project=P */
export async function listBuckets(ctx: RequestContext): Promise<void> {
  const prefix = ctx.url.searchParams.get('prefix') ?? '';
  const items = ctx.backend.store
    .listBuckets()
    .filter((b) => b.name.startsWith(prefix))
    .map((b) => bucketResource(b, ctx.baseUrl));
  sendJson(ctx.res, items.length > 0 ? { kind: 'storage#buckets', items } : { kind: 'storage#buckets' });
}

/** POST /b?project=P */
export async function insertBucket(ctx: RequestContext): Promise<void> {
  const body = (await readJson(ctx.req)) as { name?: unknown; location?: unknown; retentionPolicy?: unknown } | undefined;
  const name = body?.name;
  checkBucketName(name);
  authorize(ctx, 'storage.buckets.create', name, 'bucket');
  const { record, created } = await createBucketRecord(ctx.backend.store, name, {
    retentionPeriodSeconds: retentionPeriodOf(body?.retentionPolicy),
    location: typeof body?.location === 'string' ? body.location : undefined,
  });
  if (!created) throw new ApiError(409, 'conflict', 'Your previous request to create the named bucket succeeded and you already own it.');
  sendJson(ctx.res, bucketResource(record, ctx.baseUrl));
}

/** GET /b/B */
export async function getBucket(ctx: RequestContext, bucket: string): Promise<void> {
  authorize(ctx, 'storage.buckets.get', bucket, 'bucket');
  const record = ctx.backend.store.bucket(bucket);
  if (!record) throw bucketNotFound(bucket);
  sendJson(ctx.res, bucketResource(record, ctx.baseUrl));
}

/** PATCH /b/B: only `retentionPolicy` is honoured (null removes it). */
export async function patchBucket(ctx: RequestContext, bucket: string): Promise<void> {
  authorize(ctx, 'storage.buckets.update', bucket, 'bucket');
  const record = ctx.backend.store.bucket(bucket);
  if (!record) throw bucketNotFound(bucket);
  const body = (await readJson(ctx.req)) as Record<string, unknown> | undefined;
  const next: BucketRecord = { ...record, metageneration: record.metageneration + 1, updated: new Date().toISOString() };
  if (body && 'retentionPolicy' in body) {
    const period = retentionPeriodOf(body.retentionPolicy);
    if (period) {
      next.retentionPeriod = period;
      next.retentionEffectiveTime = next.updated;
    } else {
      delete next.retentionPeriod;
      delete next.retentionEffectiveTime;
    }
  }
  await ctx.backend.store.updateBucket(next);
  sendJson(ctx.res, bucketResource(next, ctx.baseUrl));
}

/** DELETE /b/B → 204; 409 when not empty. */
export async function deleteBucket(ctx: RequestContext, bucket: string): Promise<void> {
  authorize(ctx, 'storage.buckets.delete', bucket, 'bucket');
  if (!ctx.backend.store.bucket(bucket)) throw bucketNotFound(bucket);
  if (!(await ctx.backend.store.deleteBucket(bucket))) throw new ApiError(409, 'conflict', 'The bucket you tried to delete is not empty.');
  ctx.res.writeHead(204, { 'Content-Length': 0 });
  ctx.res.end();
}
