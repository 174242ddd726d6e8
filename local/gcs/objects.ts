/**
 * The JSON resources GCS returns (storage#object, storage#bucket) and the
 * writable object properties it accepts on insert and patch.
 *
 * Links are built from the base URL of the request being answered
 * (scheme://host the client used), because gcloud downloads through exactly
 * the `mediaLink` it was given.
 */
import type { BucketRecord, ObjectRecord } from './store.ts';
import { invalid } from './errors.ts';

/** Object properties a client may set, as strings (or a string map for metadata). */
export const WRITABLE_FIELDS = ['contentType', 'contentEncoding', 'contentDisposition', 'contentLanguage', 'cacheControl', 'customTime'] as const;
type WritableField = (typeof WRITABLE_FIELDS)[number];

/** What an upload's JSON metadata says about the object to create. */
export interface InsertMetadata {
  name?: string;
  fields: Partial<Record<WritableField, string>>;
  metadata?: Record<string, string>;
  /** checksums the client claims; verified against the received bytes */
  crc32c?: string;
  md5Hash?: string;
}

/** Percent-encode an object name for a URL path segment, as GCS does. */
export function encodeName(name: string): string {
  return encodeURIComponent(name);
}

function varint(value: bigint): number[] {
  const bytes: number[] = [];
  do {
    let byte = Number(value & 0x7fn);
    value >>= 7n;
    if (value > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0n);
  return bytes;
}

/**
 * The object's etag. GCS's JSON etag is base64 of a tiny protobuf holding
 * generation (field 1) and metageneration (field 2); we build the same, so it
 * changes exactly when either does.
 */
export function etagOf(record: Pick<ObjectRecord, 'generation' | 'metageneration'>): string {
  const bytes = [0x08, ...varint(BigInt(record.generation)), 0x10, ...varint(BigInt(record.metageneration))];
  return Buffer.from(bytes).toString('base64');
}

/** The storage#object resource for `record`, links rooted at `baseUrl` (no trailing slash). */
export function objectResource(record: ObjectRecord, baseUrl: string): Record<string, unknown> {
  const enc = encodeName(record.name);
  const resource: Record<string, unknown> = {
    kind: 'storage#object',
    id: `${record.bucket}/${record.name}/${record.generation}`,
    selfLink: `${baseUrl}/storage/v1/b/${record.bucket}/o/${enc}`,
    mediaLink: `${baseUrl}/download/storage/v1/b/${record.bucket}/o/${enc}?generation=${record.generation}&alt=media`,
    name: record.name,
    bucket: record.bucket,
    generation: record.generation,
    metageneration: String(record.metageneration),
    contentType: record.contentType,
    storageClass: 'STANDARD',
    size: String(record.size),
    crc32c: record.crc32c,
    etag: etagOf(record),
    timeCreated: record.timeCreated,
    updated: record.updated,
    timeStorageClassUpdated: record.timeCreated,
    timeFinalized: record.timeCreated,
  };
  if (record.md5Hash !== undefined) resource.md5Hash = record.md5Hash;
  if (record.componentCount !== undefined) resource.componentCount = record.componentCount;
  for (const field of WRITABLE_FIELDS) {
    if (field !== 'contentType' && record[field] !== undefined) resource[field] = record[field];
  }
  if (record.metadata && Object.keys(record.metadata).length > 0) resource.metadata = record.metadata;
  if (record.retentionExpirationTime) resource.retentionExpirationTime = record.retentionExpirationTime;
  return resource;
}

/** The storage#bucket resource. */
export function bucketResource(record: BucketRecord, baseUrl: string): Record<string, unknown> {
  const resource: Record<string, unknown> = {
    kind: 'storage#bucket',
    id: record.name,
    selfLink: `${baseUrl}/storage/v1/b/${record.name}`,
    projectNumber: '0',
    name: record.name,
    timeCreated: record.timeCreated,
    updated: record.updated,
    metageneration: String(record.metageneration),
    location: record.location,
    locationType: 'region',
    storageClass: 'STANDARD',
    etag: Buffer.from([0x10, ...varint(BigInt(record.metageneration))]).toString('base64'),
    iamConfiguration: { uniformBucketLevelAccess: { enabled: true }, publicAccessPrevention: 'enforced' },
  };
  if (record.retentionPeriod !== undefined) {
    resource.retentionPolicy = {
      retentionPeriod: String(record.retentionPeriod),
      effectiveTime: record.retentionEffectiveTime ?? record.timeCreated,
    };
  }
  return resource;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validate a `metadata` map: string values, or null (delete) when `allowNull`. */
function parseMetadataMap(value: unknown, allowNull: boolean): Record<string, string | null> {
  if (!isObject(value)) throw invalid('Invalid value for metadata: expected an object');
  const out: Record<string, string | null> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === null && allowNull) out[key] = null;
    else if (typeof v === 'string') out[key] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[key] = String(v);
    else throw invalid(`Invalid value for metadata.${key}`);
  }
  return out;
}

/** Parse the JSON metadata of an upload (multipart JSON part or resumable start body). */
export function parseInsertMetadata(json: unknown): InsertMetadata {
  if (json === undefined || json === null) return { fields: {} };
  if (!isObject(json)) throw invalid('Invalid object metadata: expected a JSON object');
  const out: InsertMetadata = { fields: {} };
  if (typeof json.name === 'string') out.name = json.name;
  for (const field of WRITABLE_FIELDS) {
    const value = json[field];
    if (typeof value === 'string') out.fields[field] = value;
  }
  if (json.metadata !== undefined && json.metadata !== null) {
    const map = parseMetadataMap(json.metadata, false);
    out.metadata = map as Record<string, string>;
  }
  if (typeof json.crc32c === 'string') out.crc32c = json.crc32c;
  if (typeof json.md5Hash === 'string') out.md5Hash = json.md5Hash;
  return out;
}

/**
 * Apply a PATCH body to `record` (a new record is returned; the caller bumps
 * metageneration). `metadata` is merged key by key, a null value deletes the
 * key and `metadata: null` clears it; other writable fields are replaced, null
 * clears them. Unknown or read-only fields are ignored, as GCS does.
 */
export function applyPatch(record: ObjectRecord, body: unknown): ObjectRecord {
  if (!isObject(body)) throw invalid('Invalid patch body: expected a JSON object');
  const next: ObjectRecord = { ...record, metadata: { ...record.metadata } };
  for (const field of WRITABLE_FIELDS) {
    if (!(field in body)) continue;
    const value = body[field];
    if (value === null) {
      if (field === 'contentType') next.contentType = 'application/octet-stream';
      else delete next[field];
    } else if (typeof value === 'string') {
      next[field] = value;
    } else {
      throw invalid(`Invalid value for ${field}`);
    }
  }
  if ('metadata' in body) {
    if (body.metadata === null) next.metadata = {};
    else {
      for (const [key, value] of Object.entries(parseMetadataMap(body.metadata, true))) {
        if (value === null) delete next.metadata![key];
        else next.metadata![key] = value;
      }
    }
  }
  return next;
}
