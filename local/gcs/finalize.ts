/**
 * Turning received bytes into a live object: verify the checksums the
 * client claimed, then, under the per-name lock, check preconditions, the
 * permission to replace and the retention policy against the object that is
 * live at that moment, commit, and queue the events. Every upload path
 * (multipart, media, resumable, compose, rewrite) ends here, so they all
 * behave alike.
 */
import * as fs from 'node:fs/promises';
import { digests, type RunningHash, verifyClaims } from './body.ts';
import { authorizeIdentity, type Backend } from './context.ts';
import { bucketNotFound, invalid } from './errors.ts';
import type { InsertMetadata } from './objects.ts';
import { objectResource } from './objects.ts';
import { checkPreconditions, type Preconditions } from './preconditions.ts';
import { checkRetention, retentionExpiration } from './retention.ts';
import type { ObjectRecord } from './store.ts';

/** An object about to be created from a complete temp file. */
export interface PendingObject {
  bucket: string;
  name: string;
  /** the complete bytes; moved into place on success, removed on failure */
  tempFile: string;
  hash: RunningHash;
  insert: InsertMetadata;
  /** content type when the metadata names none (e.g. the media part's or request's Content-Type) */
  fallbackContentType?: string;
  preconditions: Preconditions;
  /** who uploads, for the delete permission a replacement needs */
  identity: string | undefined;
  /** checksums claimed in x-goog-hash */
  headerClaims?: { crc32c?: string; md5Hash?: string };
  /** X-Upload-Content-Length given at session start */
  expectedSize?: number;
  /** composed objects have no MD5 on GCS */
  composite?: { componentCount: number };
}

/** 400 unless `name` is a valid object name (GCS's rules, abridged). */
export function checkObjectName(name: string | undefined): asserts name is string {
  if (name === undefined || name === '') throw invalid('Object name is required');
  if (Buffer.byteLength(name) > 1024) throw invalid('The object name is too long (more than 1024 bytes).');
  if (/[\r\n]/.test(name)) throw invalid('Object names may not contain carriage return or line feed characters.');
  if (name === '.' || name === '..') throw invalid(`Object name "${name}" is not allowed.`);
}

/** Commit `pending` as the new live version; returns its record. Removes the temp file on failure. */
export async function finalizeObject(backend: Backend, pending: PendingObject): Promise<ObjectRecord> {
  const { store } = backend;
  try {
    checkObjectName(pending.name);
    const actual = digests(pending.hash);
    verifyClaims(pending.headerClaims ?? {}, actual);
    verifyClaims({ crc32c: pending.insert.crc32c, md5Hash: pending.insert.md5Hash }, actual);
    if (pending.expectedSize !== undefined && pending.expectedSize !== pending.hash.size) {
      throw invalid(`Upload size ${pending.hash.size} does not match X-Upload-Content-Length ${pending.expectedSize}.`);
    }
    const { record, previous } = await store.lock(pending.bucket, pending.name, async () => {
      const bucket = store.bucket(pending.bucket);
      if (!bucket) throw bucketNotFound(pending.bucket);
      const current = store.get(pending.bucket, pending.name);
      checkPreconditions(pending.preconditions, current);
      backend.rateLimit?.check(pending.bucket, pending.name);
      if (current) {
        authorizeIdentity(backend.access, pending.identity, 'storage.objects.delete', pending.bucket);
        checkRetention(bucket, current);
      }
      const now = new Date().toISOString();
      const record: ObjectRecord = {
        bucket: pending.bucket,
        name: pending.name,
        generation: store.nextGeneration(),
        metageneration: 1,
        size: pending.hash.size,
        crc32c: actual.crc32c,
        contentType: pending.insert.fields.contentType ?? pending.fallbackContentType ?? 'application/octet-stream',
        timeCreated: now,
        updated: now,
      };
      if (!pending.composite) record.md5Hash = actual.md5Hash;
      else record.componentCount = pending.composite.componentCount;
      for (const [field, value] of Object.entries(pending.insert.fields)) {
        if (field !== 'contentType' && value !== undefined) (record as unknown as Record<string, unknown>)[field] = value;
      }
      if (pending.insert.metadata) record.metadata = { ...pending.insert.metadata };
      const expires = retentionExpiration(bucket, now);
      if (expires) record.retentionExpirationTime = expires;
      const previous = await store.commit(record, pending.tempFile);
      backend.rateLimit?.record(pending.bucket, pending.name);
      return { record, previous };
    });
    const time = record.timeCreated;
    if (previous) {
      backend.events.emit({
        type: 'deleted',
        record: previous,
        resource: objectResource(previous, backend.eventsBaseUrl),
        time,
        overwrittenByGeneration: record.generation,
      });
    }
    backend.events.emit({
      type: 'finalized',
      record,
      resource: objectResource(record, backend.eventsBaseUrl),
      time,
      overwroteGeneration: previous?.generation,
    });
    return record;
  } catch (err) {
    await fs.rm(pending.tempFile, { force: true });
    throw err;
  }
}

/** Queue the `deleted` event of a removed object. */
export function emitDeleted(backend: Backend, record: ObjectRecord): void {
  backend.events.emit({ type: 'deleted', record, resource: objectResource(record, backend.eventsBaseUrl), time: new Date().toISOString() });
}
