import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Bucket, File } from '@google-cloud/storage';
import { GcwalError, UsageError } from '../../errors.ts';
import { isObjectMissing, mapGcsError, type CallSite } from './errors.ts';
import { GcsHttpClient } from './http.ts';
import { createLibraryClient } from './library.ts';
import { GoogleAuthTokens, loadGoogleAuth, MetadataServerTokens, type LibraryAuth, type TokenSource } from './token.ts';
import { normaliseGeneration } from '../generation.ts';
import { CHUNK_QUANTUM } from './resumable.ts';
import { AdaptiveLimiter } from './throttle.ts';
import { STREAM_TURNAROUND_MS, writeObject } from './write.ts';
import type { CallOptions, DeleteOptions, ListOptions, ObjectInfo, ReadOptions, Storage, WriteOptions } from '../types.ts';

export { GCS_SCOPES } from './token.ts';

export interface GcsStorageOptions {
  /** API root of an emulator or private endpoint, e.g. http://127.0.0.1:9023; undefined = Google */
  endpoint?: string;
  /** act as this service account (its token minted with the ambient credentials) */
  impersonate?: string;
  /**
   * A PEM file of the CA certificates to trust for the endpoint instead of
   * the default roots (an emulator's or a private endpoint's own CA). Read
   * when the driver is made; a file that cannot be read is a UsageError.
   * Scoped to this driver's connections, unlike NODE_EXTRA_CA_CERTS, which
   * Node 20 loads (with its whole root store) as every process starts.
   */
  caFile?: string;
  /**
   * Get the driver's own tokens straight from this metadata server
   * (`host[:port]`, as GCE_METADATA_HOST) rather than through
   * google-auth-library. The config edge sets it only where Application
   * Default Credentials would end up at the metadata server anyway;
   * ignored with `impersonate`.
   */
  metadataServer?: { host: string };
  projectId?: string;
  /** resumable upload chunk size in bytes (rounded down to a multiple of 256 KiB); bounds upload memory per stream */
  chunkSize?: number;
  /** writes are streamed against an endpoint that has answered within this many ms; default STREAM_TURNAROUND_MS */
  streamTurnaroundMs?: number;
  /** retries of a failed request */
  retries?: number;
  /** cap on one backoff wait in seconds (default 32) */
  maxRetryDelaySeconds?: number;
  /** maximum concurrent transfers; halves on 429 and recovers */
  concurrency?: number;
}

interface ParsedUrl {
  bucket: string;
  prefix: string;
}

/** Split `gs://bucket/some/prefix` into bucket and a key prefix ending in `/` (or empty). */
export function parseGsUrl(url: string): ParsedUrl {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new UsageError(`"${url}" is not a gs:// URL`, 'use gs://bucket or gs://bucket/prefix');
  const prefix = m[2].replace(/\/+$/, '');
  return { bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
}

/** The certificates of GCWAL_GCS_CA_FILE; a UsageError naming the file when it cannot be read or holds none. */
function readCaFile(file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new UsageError(
      `cannot read the CA file ${file} (GCWAL_GCS_CA_FILE): ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      'point GCWAL_GCS_CA_FILE at a readable PEM file of the certificates that sign the storage endpoint, or unset it to trust the default roots',
      { cause: err },
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UsageError(
      `the CA file ${file} (GCWAL_GCS_CA_FILE) holds no PEM certificate`,
      'give a PEM file with one or more BEGIN CERTIFICATE blocks, or unset GCWAL_GCS_CA_FILE',
    );
  }
  return pem;
}

function infoFromMetadata(key: string, m: Record<string, unknown>): ObjectInfo {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries((m.metadata as Record<string, unknown>) ?? {})) if (v !== null && v !== undefined) metadata[k] = String(v);
  return {
    key,
    size: Number(m.size),
    crc32c: String(m.crc32c ?? ''),
    metadata,
    created: new Date(String(m.timeCreated ?? m.updated ?? 0)),
    generation: String(m.generation ?? '0'),
  };
}

/**
 * `gs://bucket/prefix` repository.
 *
 * - `stat`, `read` and every write go through GcsHttpClient, a small JSON
 *   API client on node:http/node:https (see UploadStrategy in write.ts): an object that
 *   fits in one chunk (every compressed WAL segment with the default 8 MiB)
 *   is one multipart request carrying its CRC32C, a larger one a resumable
 *   session of our own (resumable.ts) whose last chunk carries the
 *   CRC32C and the size. Either way the server checks them before the
 *   object exists, so damage in transit never leaves an object behind; and
 *   memory stays bounded by `chunkSize` per write. `list` and `delete` use
 *   @google-cloud/storage, loaded only when one of them is called.
 * - Tokens: with `metadataServer` (and no `impersonate`) the driver's own
 *   requests take them straight from the metadata server; otherwise from
 *   google-auth-library's Application Default Credentials (metadata server,
 *   workload identity, GOOGLE_APPLICATION_CREDENTIALS key, external_account,
 *   impersonated_service_account), optionally impersonating a service
 *   account. The client library always authenticates through the latter.
 * - Writes are create-only (`ifGenerationMatch: 0`); a failed or aborted
 *   source never finalises the object. The agent never overwrites, composes
 *   or deletes. Only the catalogue is replaced, with
 *   `ifGenerationMatch: <generation>`; deletes may carry one too. A 412 on
 *   those is PreconditionFailedError.
 * - CRC32C (hardware) is checked by the server on every upload, and the
 *   object it reports checked against ours; callers verify what `read`
 *   returns themselves.
 * - Requests are retried on 408/429/5xx and dropped connections with
 *   exponential backoff and jitter; 429s also halve concurrency. A
 *   connection dropped in the middle of a download is an error of the stream
 *   `read` returned, never a short read.
 */
export class GcsStorage implements Storage {
  readonly url: string;
  private readonly bucketName: string;
  private readonly prefix: string;
  private readonly limiter: AdaptiveLimiter;
  private readonly chunkSize: number;
  private readonly tokens: TokenSource;
  private readonly http: GcsHttpClient;
  private readonly ca: Buffer | undefined;
  private authPromise: Promise<LibraryAuth> | undefined;
  private clientPromise: Promise<{ bucket: Bucket }> | undefined;
  private identity: string | undefined;

  constructor(
    url: string,
    private readonly options: GcsStorageOptions = {},
  ) {
    const parsed = parseGsUrl(url);
    this.url = url.replace(/\/+$/, '');
    this.bucketName = parsed.bucket;
    this.prefix = parsed.prefix;
    this.limiter = new AdaptiveLimiter(options.concurrency ?? 8);
    this.chunkSize = Math.max(CHUNK_QUANTUM, Math.floor((options.chunkSize ?? 8 * 1024 * 1024) / CHUNK_QUANTUM) * CHUNK_QUANTUM);
    this.identity = options.impersonate;
    this.tokens =
      options.metadataServer && !options.impersonate
        ? new MetadataServerTokens({ host: options.metadataServer.host })
        : new GoogleAuthTokens(() => this.libraryAuth());
    this.ca = options.caFile === undefined ? undefined : readCaFile(options.caFile);
    this.http = new GcsHttpClient({
      endpoint: options.endpoint,
      tokens: this.tokens,
      retries: options.retries,
      maxRetryDelaySeconds: options.maxRetryDelaySeconds,
      limiter: this.limiter,
      ca: this.ca,
    });
  }

  /** google-auth-library's credentials, loaded on first use (a start-up cost, docs/performance.md): shared by the token source and the client library. */
  private libraryAuth(): Promise<LibraryAuth> {
    this.authPromise ??= loadGoogleAuth({ projectId: this.options.projectId, impersonate: this.options.impersonate });
    return this.authPromise;
  }

  /** The client library, loaded on first use: it costs start-up time that stat, read and small writes do not pay. */
  private client(): Promise<{ bucket: Bucket }> {
    this.clientPromise ??= this.libraryAuth().then(({ client }) =>
      createLibraryClient({ ...this.options, ca: this.ca }, client, this.limiter, this.bucketName),
    );
    return this.clientPromise;
  }

  private site(op: CallSite['op'], key: string, expectedGeneration?: string): CallSite {
    return { op, name: this.prefix + key, bucket: this.bucketName, identity: this.identity, expectedGeneration, endpoint: this.options.endpoint };
  }

  private async fail(err: unknown, op: CallSite['op'], key: string, expectedGeneration?: string): Promise<never> {
    const mapped = mapGcsError(err, this.site(op, key, expectedGeneration));
    if (mapped.code === 'auth' && !(err instanceof GcwalError) && !this.identity) {
      // Best effort: learn which identity we act as, so the message can name it.
      this.identity = await this.tokens.identity();
      throw mapGcsError(err, this.site(op, key, expectedGeneration));
    }
    throw mapped;
  }

  private file(key: string): Promise<File> {
    return this.client().then(({ bucket }) => bucket.file(this.prefix + key));
  }

  async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    options.signal?.throwIfAborted();
    try {
      return infoFromMetadata(key, await this.http.getMetadata(this.bucketName, this.prefix + key, { signal: options.signal }));
    } catch (err) {
      // Not any 404: a missing bucket, a proxy or a wrong endpoint path is an error, not "absent".
      if (isObjectMissing(err, this.bucketName)) return undefined;
      return this.fail(err, 'stat', key);
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    // Not File.createReadStream: in @google-cloud/storage 7 a connection reset
    // in the middle of a body leaves that stream stalled forever, with no
    // error and no end. Here a reset is an error the caller can retry.
    options.signal?.throwIfAborted();
    try {
      return await this.http.download(this.bucketName, this.prefix + key, {
        start: options.start,
        end: options.end,
        signal: options.signal,
        wrapError: (err) => mapGcsError(err, this.site('read', key)),
      });
    } catch (err) {
      return this.fail(err, 'read', key);
    }
  }

  async write(key: string, source: Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
    let expected: string;
    try {
      expected = normaliseGeneration(options.ifGenerationMatch) ?? '0';
    } catch (err) {
      source.destroy();
      throw err;
    }
    const contentType = options.contentType ?? 'application/octet-stream';
    try {
      const turnaround = this.http.fastestTurnaroundMs;
      const near = turnaround !== undefined && turnaround <= (this.options.streamTurnaroundMs ?? STREAM_TURNAROUND_MS);
      return infoFromMetadata(
        key,
        await writeObject(this.http, this.bucketName, this.prefix + key, source, {
          ifGenerationMatch: expected,
          contentType,
          metadata: options.metadata,
          signal: options.signal,
          chunkSize: this.chunkSize,
          near,
        }),
      );
    } catch (err) {
      source.destroy();
      return this.fail(err, 'write', key, expected);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    let bucket: Bucket;
    try {
      bucket = (await this.client()).bucket;
    } catch (err) {
      return this.fail(err, 'list', prefix);
    }
    let pageToken: string | undefined;
    const startOffset = options.startAfter !== undefined ? this.prefix + options.startAfter : undefined;
    do {
      options.signal?.throwIfAborted();
      let items: Record<string, unknown>[];
      try {
        const [, next, response] = await this.limiter.run(() =>
          bucket.getFiles({ prefix: this.prefix + prefix, autoPaginate: false, maxResults: 1000, pageToken, startOffset }),
        );
        items = (response as { items?: Record<string, unknown>[] })?.items ?? [];
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } catch (err) {
        return this.fail(err, 'list', prefix);
      }
      for (const m of items) {
        const key = String(m.name).slice(this.prefix.length);
        if (options.startAfter !== undefined && key <= options.startAfter) continue;
        yield infoFromMetadata(key, m);
      }
    } while (pageToken);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const expected = normaliseGeneration(options.ifGenerationMatch);
    try {
      const file = await this.file(key);
      // With a generation the delete is idempotent, so the client retries it.
      // Not the library's ignoreNotFound: it swallows every 404, a missing
      // bucket's included, and a delete there must fail rather than "succeed".
      await this.limiter.run(() => file.delete(expected === undefined ? {} : { ifGenerationMatch: expected }));
    } catch (err) {
      if (isObjectMissing(err, this.bucketName)) return;
      return this.fail(err, 'delete', key, expected);
    }
  }
}
