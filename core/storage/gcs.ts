import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bucket, Storage as GcsClient, File } from '@google-cloud/storage';
import { createRequire } from 'node:module';
import type { AuthClient, GoogleAuth } from 'google-auth-library';
import { crc32c, crc32cBase64 } from '../checksum/crc32c.ts';
import { UsageError } from '../errors.ts';
import { httpStatus, isBucketMissing, isRateLimited, mapGcsError, type CallSite } from './gcs-errors.ts';
import { AdaptiveLimiter } from './throttle.ts';
import type { CallOptions, DeleteOptions, ListOptions, ObjectInfo, ReadOptions, Storage, WriteOptions } from './types.ts';
import { normaliseGeneration } from './generation.ts';
import { backoffDelay } from '../backoff.ts';

/** Scope the agent asks for: object read/write, nothing else. */
export const GCS_SCOPES = ['https://www.googleapis.com/auth/devstorage.read_write'];

export interface GcsStorageOptions {
  /** API root of an emulator or private endpoint, e.g. http://127.0.0.1:9023; undefined = Google */
  endpoint?: string;
  /** act as this service account (its token minted with the ambient credentials) */
  impersonate?: string;
  projectId?: string;
  /** resumable upload chunk size in bytes, a multiple of 256 KiB; bounds upload memory per stream */
  chunkSize?: number;
  /** retries of a failed request inside the client library */
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

/** CRC32C validator for the client library, on the hardware implementation. */
function crc32cGenerator() {
  let value = 0;
  return {
    update(data: Buffer) {
      value = crc32c(data, value);
    },
    validate(expected: string) {
      return crc32cBase64(value) === expected;
    },
    toString() {
      return crc32cBase64(value);
    },
  };
}

/**
 * Buffer the start of `source`, up to `limit` bytes or its end, whichever
 * comes first; the stream is left paused after the head for the caller to go on reading.
 */
function takeHead(source: Readable, limit: number, signal?: AbortSignal): Promise<{ chunks: Buffer[]; bytes: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onAbort = () => {
      cleanup();
      source.destroy();
      reject(signal!.reason ?? new Error('aborted'));
    };
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes >= limit) {
        source.pause();
        cleanup();
        resolve({ chunks, bytes, ended: false });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ chunks, bytes, ended: true });
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(err);
    };
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
  });
}

/** Wait before retry `attempt`, capped at `maxSeconds`. */
function backoff(attempt: number, maxSeconds = 32): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, 250, maxSeconds * 1000)));
}

function infoFromMetadata(key: string, m: Record<string, unknown>): ObjectInfo {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries((m.metadata as Record<string, unknown>) ?? {})) if (v !== null && v !== undefined) metadata[k] = String(v);
  return { key, size: Number(m.size), crc32c: String(m.crc32c ?? ''), metadata, created: new Date(String(m.timeCreated ?? m.updated ?? 0)), generation: String(m.generation ?? '0') };
}

/**
 * `gs://bucket/prefix` repository on @google-cloud/storage.
 *
 * - Authenticates with Application Default Credentials (metadata server,
 *   workload identity, GOOGLE_APPLICATION_CREDENTIALS key, external_account,
 *   impersonated_service_account), optionally impersonating a service account.
 * - Writes are resumable uploads, create-only (`ifGenerationMatch: 0`), in
 *   chunks of `chunkSize` so memory stays bounded; a failed or aborted source
 *   never finalises the object. The agent never overwrites, composes or deletes.
 *   Only the catalogue is replaced, with `ifGenerationMatch: <generation>`;
 *   deletes may carry one too. A 412 on those is PreconditionFailedError.
 * - CRC32C (hardware) is checked by the client on every upload and whole
 *   download; callers verify ranged reads themselves.
 * - Requests are retried by the client on 408/429/5xx and dropped connections
 *   with exponential backoff and jitter; 429s also halve concurrency.
 */
export class GcsStorage implements Storage {
  readonly url: string;
  private readonly bucketName: string;
  private readonly prefix: string;
  private readonly limiter: AdaptiveLimiter;
  private readonly chunkSize: number;
  private clientPromise: Promise<{ client: GcsClient; bucket: Bucket; auth: GoogleAuth | AuthClient }> | undefined;
  private identity: string | undefined;

  constructor(url: string, private readonly options: GcsStorageOptions = {}) {
    const parsed = parseGsUrl(url);
    this.url = url.replace(/\/+$/, '');
    this.bucketName = parsed.bucket;
    this.prefix = parsed.prefix;
    this.limiter = new AdaptiveLimiter(options.concurrency ?? 8);
    this.chunkSize = options.chunkSize ?? 8 * 1024 * 1024;
  }

  /** The library is loaded on first use: it costs start-up time wal-push on file:// should not pay. */
  private client() {
    this.clientPromise ??= (async () => {
      // require() its CommonJS build: measured 60-100 ms faster to load than
      // import() of its ESM build, and wal-push pays it once per segment.
      const { Storage: GcsStorageClient, IdempotencyStrategy } = createRequire(import.meta.url)('@google-cloud/storage') as typeof import('@google-cloud/storage');
      // Use the google-auth-library the storage client itself depends on:
      // its auth clients must match the client's own version of the library.
      const { GoogleAuth, Impersonated } = createRequire(import.meta.resolve('@google-cloud/storage'))('google-auth-library') as typeof import('google-auth-library');
      const auth = new GoogleAuth({ scopes: GCS_SCOPES, projectId: this.options.projectId });
      let authClient: GoogleAuth | AuthClient = auth;
      if (this.options.impersonate) {
        this.identity = this.options.impersonate;
        authClient = new Impersonated({ sourceClient: await auth.getClient(), targetPrincipal: this.options.impersonate, targetScopes: GCS_SCOPES, lifetime: 3600, delegates: [] });
      }
      const limiter = this.limiter;
      const client = new GcsStorageClient({
        authClient: authClient as never,
        projectId: this.options.projectId,
        apiEndpoint: this.options.endpoint,
        useAuthWithCustomEndpoint: true,
        crc32cGenerator,
        retryOptions: {
          // maxRetries 0 alone still retries with the library's default count.
          autoRetry: (this.options.retries ?? 5) > 0,
          maxRetries: this.options.retries ?? 5,
          retryDelayMultiplier: 2,
          maxRetryDelay: this.options.maxRetryDelaySeconds ?? 32,
          totalTimeout: 300,
          idempotencyStrategy: IdempotencyStrategy.RetryConditional,
          retryableErrorFn: (err) => {
            if (isRateLimited(err)) limiter.throttled();
            const status = httpStatus(err);
            if (status !== undefined) return status === 408 || status === 429 || status >= 500;
            return /ECONNRESET|ETIMEDOUT|EPIPE|EAI_AGAIN|ECONNREFUSED|socket hang up|premature|connection|network/i.test(`${err.code ?? ''} ${err.message ?? ''}`);
          },
        },
      });
      return { client, bucket: client.bucket(this.bucketName), auth: authClient };
    })();
    return this.clientPromise;
  }

  private site(op: CallSite['op'], key: string, expectedGeneration?: string): CallSite {
    return { op, name: this.prefix + key, bucket: this.bucketName, identity: this.identity, expectedGeneration };
  }

  /** Best effort: learn which identity we act as, so auth errors can name it. */
  private async learnIdentity(): Promise<void> {
    if (this.identity) return;
    try {
      const { auth } = await this.client();
      const creds = await (auth as GoogleAuth).getCredentials?.();
      if (creds?.client_email) this.identity = creds.client_email;
    } catch {
      // The error being reported is more useful than this one.
    }
  }

  private async fail(err: unknown, op: CallSite['op'], key: string, expectedGeneration?: string): Promise<never> {
    const mapped = mapGcsError(err, this.site(op, key, expectedGeneration));
    if (mapped.code === 'auth') {
      await this.learnIdentity();
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
      const file = await this.file(key);
      const [m] = await this.limiter.run(() => file.getMetadata());
      this.limiter.succeeded();
      return infoFromMetadata(key, m as Record<string, unknown>);
    } catch (err) {
      // GCS answers 404 for a missing bucket too: that is an error, not "absent".
      if (httpStatus(err) === 404 && !isBucketMissing(err)) return undefined;
      return this.fail(err, 'stat', key);
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    // Downloads use fetch with the client's credentials rather than
    // File.createReadStream: in @google-cloud/storage 7 a connection reset in
    // the middle of a body leaves that stream stalled forever, with no error
    // and no end. Here a reset is an error the caller can retry.
    const name = this.prefix + key;
    const base = this.options.endpoint ?? 'https://storage.googleapis.com';
    const url = `${base}/storage/v1/b/${encodeURIComponent(this.bucketName)}/o/${encodeURIComponent(name)}?alt=media`;
    const retries = this.options.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      options.signal?.throwIfAborted();
      let response: Response;
      try {
        const { auth } = await this.client();
        const headers = new Headers(Object.entries((await (auth as GoogleAuth).getRequestHeaders()) as unknown as Record<string, string>));
        if (options.start !== undefined || options.end !== undefined) headers.set('Range', `bytes=${options.start ?? 0}-${options.end ?? ''}`);
        headers.set('Accept-Encoding', 'identity');
        response = await this.limiter.run(() => fetch(url, { headers, signal: options.signal }));
      } catch (err) {
        const mapped = mapGcsError(err, this.site('read', key));
        if (mapped.code === 'storage' && (mapped as { transient?: boolean }).transient && attempt < retries) {
          await backoff(attempt, this.options.maxRetryDelaySeconds);
          continue;
        }
        return this.fail(err, 'read', key);
      }
      if (response.ok && response.body) {
        this.limiter.succeeded();
        const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
        const out = new PassThrough({ highWaterMark: 1024 * 1024 });
        body.on('error', (err) => out.destroy(mapGcsError(err, this.site('read', key))));
        body.pipe(out);
        return out;
      }
      const text = await response.text().catch(() => '');
      let detail: { code: number; message: string; errors?: { reason?: string }[] } = { code: response.status, message: text.slice(0, 300) };
      try {
        const parsed = JSON.parse(text) as { error?: { message?: string; errors?: { reason?: string }[] } };
        detail = { code: response.status, message: parsed.error?.message ?? detail.message, errors: parsed.error?.errors };
      } catch {
        // not JSON: keep the raw text
      }
      if (response.status === 429) this.limiter.throttled();
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
      if (retryable && attempt < retries) {
        await backoff(attempt, this.options.maxRetryDelaySeconds);
        continue;
      }
      return this.fail(detail, 'read', key);
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
    try {
      return await this.limiter.run(async () => {
        const file = await this.file(key);
        const metadata = { contentType: options.contentType ?? 'application/octet-stream', metadata: options.metadata ?? {} };
        // '0': create-only. A generation: replace exactly that one (the
        // client then also retries the upload, the request being idempotent).
        const preconditionOpts = { ifGenerationMatch: expected };
        // An object that fits in one chunk (every compressed WAL segment with
        // the default 8 MiB) goes up as one multipart request carrying its
        // metadata, as pgBackRest does below its chunk size; only larger ones
        // pay for a resumable session. Memory stays bounded by chunkSize.
        // Both paths validate CRC32C (validation: 'crc32c'): the library
        // compares its own with the server's and fails the write when they
        // differ or the server reports none, so the response is the record.
        const head = await takeHead(source, this.chunkSize, options.signal);
        if (head.ended) {
          options.signal?.throwIfAborted();
          await file.save(Buffer.concat(head.chunks, head.bytes), { resumable: false, metadata, preconditionOpts, validation: 'crc32c' });
        } else {
          // The session is created with createResumableUpload, which sends the
          // credentials even to a custom endpoint; the chunk PUTs then go to
          // the session URI, which is itself the authorisation (as on GCS).
          // offset 0: the session is new, so skip asking it how much it holds.
          const [uri] = await file.createResumableUpload({ metadata, preconditionOpts });
          const rest = Readable.from((async function* () {
            yield* head.chunks;
            for await (const chunk of source) yield chunk as Buffer;
          })());
          const sink = file.createWriteStream({ uri, offset: 0, resumable: true, chunkSize: this.chunkSize, metadata, preconditionOpts, validation: 'crc32c' });
          await pipeline(rest, sink, { signal: options.signal });
        }
        this.limiter.succeeded();
        return infoFromMetadata(key, (file.metadata ?? {}) as Record<string, unknown>);
      });
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
        const [, next, response] = await this.limiter.run(() => bucket.getFiles({ prefix: this.prefix + prefix, autoPaginate: false, maxResults: 1000, pageToken, startOffset }));
        items = ((response as { items?: Record<string, unknown>[] })?.items ?? []);
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
      if (httpStatus(err) === 404 && !isBucketMissing(err)) return;
      return this.fail(err, 'delete', key, expected);
    }
  }
}
