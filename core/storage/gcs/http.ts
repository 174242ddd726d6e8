/**
 * A minimal client of the Cloud Storage JSON API over node:http/node:https,
 * for object metadata, a (ranged) download, a one-request multipart upload,
 * and the requests of gcwal's resumable uploads (resumable.ts, through
 * `exchange`): every call the gs:// driver makes but listings and deletes.
 * It exists for start-up time: loading @google-cloud/storage, and Node's
 * fetch on first use, would be paid by every archive_command call
 * (docs/performance.md).
 *
 * Answers that are not 2xx become GcsHttpError, shaped like the client
 * library's ApiError so mapGcsError, httpStatus and isBucketMissing read them
 * alike. Wire format: docs/gcs-wire-format.md (multipart upload, download,
 * preconditions and errors).
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../../backoff.ts';
import { crc32c, crc32cBase64 } from '../../checksum/crc32c.ts';
import { GcwalError } from '../../errors.ts';
import { randomToken } from '../../random-token.ts';
import { isTransientNetworkError, retry, type RetryOptions } from '../../retry.ts';
import type { TokenSource } from './token.ts';
import { checkedBody, readAnswer } from './http-body.ts';
import { AdaptiveLimiter } from './throttle.ts';

/** Google's API root. */
export const DEFAULT_ENDPOINT = 'https://storage.googleapis.com';

/** How a GcsHttpClient reaches Cloud Storage and how hard it tries. */
export interface GcsHttpOptions {
  /** API root, e.g. http://127.0.0.1:9023 (no scheme means https, as the client library reads it); default Google's */
  endpoint?: string;
  tokens: TokenSource;
  /** retries of a request answered 408/429/5xx or cut off at the connection; default 5 */
  retries?: number;
  /** cap on one backoff wait in seconds; default 32 */
  maxRetryDelaySeconds?: number;
  /** bounds concurrent requests; 429s halve it. Default: a limiter of 8 of its own */
  limiter?: AdaptiveLimiter;
  /** a request fails (and is retried) when its connection is idle this long before the answer is in; default 60 s */
  timeoutMs?: number;
  /** the same for a download's body, which a slow consumer may hold back; default 300 s */
  bodyTimeoutMs?: number;
  /** CA certificates (PEM) trusted for an https endpoint instead of the default roots */
  ca?: Buffer;
}

/** One entry of Google's `error.errors` list. */
export interface GcsErrorDetail {
  domain?: string;
  reason?: string;
  message?: string;
}

/**
 * A non-2xx answer: `code` is the HTTP status, `message` Google's
 * `error.message` (or the start of a body that is not Google's JSON),
 * `errors` its `error.errors`.
 */
export class GcsHttpError extends Error {
  readonly code: number;
  readonly errors: GcsErrorDetail[];
  constructor(status: number, message: string, errors: GcsErrorDetail[] = []) {
    super(message);
    this.name = 'GcsHttpError';
    this.code = status;
    this.errors = errors;
  }
}

/** What `download` fetches and how its stream reports failures. */
export interface DownloadOptions {
  /** first byte, inclusive */
  start?: number;
  /** last byte, inclusive */
  end?: number;
  signal?: AbortSignal;
  /** turns an error in the middle of the body into what the reader should see; default as it is */
  wrapError?: (err: unknown) => Error;
}

/** The object `upload` creates: its precondition, content type, user metadata and claimed CRC32C. */
export interface UploadOptions {
  /** `'0'`: create-only; else replace only this live generation */
  ifGenerationMatch: string;
  contentType?: string;
  metadata?: Record<string, string>;
  /** the CRC32C to claim for the body (base64, big-endian); default computed from it. The server checks it. */
  crc32c?: string;
  signal?: AbortSignal;
}

/** One request as GcsHttpClient makes it (see {@link GcsHttpClient.exchange}). */
export interface Exchange {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** path and query under the endpoint */
  path: string;
  /** an absolute URL instead of `path` (a resumable session's URI) */
  url?: string;
  headers?: Record<string, string>;
  body?: readonly Buffer[];
  signal?: AbortSignal;
  /** hand a 2xx answer over unread (downloads) */
  stream?: boolean;
  /** statuses besides 2xx that are an answer, not an error (308 for a resumable chunk) */
  accept?: readonly number[];
  /** false: one attempt; the caller recovers from transient failures itself (a chunk PUT must ask where to resume) */
  retry?: boolean;
}

/** A read answer: status, headers and the whole body. */
export interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Outcome = { res: IncomingMessage; req: ClientRequest } | Answer;

/**
 * The client. One keep-alive Agent per instance; every request carries the
 * token source's headers and honours its AbortSignal. Retries 408, 429, 5xx
 * and connection-level failures with exponential backoff and jitter (every
 * request made here is safe to repeat: reads, and uploads that are
 * create-only or generation-matched, whose repeat after a lost answer gets
 * 412); a 429 also halves the limiter. A 401 drops the cached token and tries
 * once more.
 */
export class GcsHttpClient {
  private readonly base: string;
  private readonly lib: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly tokens: TokenSource;
  /** retries of one request (GcsHttpOptions.retries); callers that resume on their own (resumable.ts) use the same budget, per chunk */
  readonly retries: number;
  private readonly maxDelayMs: number;
  private readonly limiter: AdaptiveLimiter;
  private readonly timeoutMs: number;
  private readonly bodyTimeoutMs: number;
  #fastestTurnaround: number | undefined;

  constructor(options: GcsHttpOptions) {
    const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
    this.base = /^https?:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`;
    this.lib = this.base.toLowerCase().startsWith('https:') ? https : http;
    this.agent = options.ca && this.lib === https ? new https.Agent({ keepAlive: true, ca: options.ca }) : new this.lib.Agent({ keepAlive: true });
    this.tokens = options.tokens;
    this.retries = options.retries ?? 5;
    this.maxDelayMs = (options.maxRetryDelaySeconds ?? 32) * 1000;
    this.limiter = options.limiter ?? new AdaptiveLimiter(8);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 300_000;
  }

  /** The object resource of `name` (its JSON, as GCS sends it). A missing object or bucket is a GcsHttpError 404. */
  async getMetadata(bucket: string, name: string, options: { signal?: AbortSignal } = {}): Promise<Record<string, unknown>> {
    return this.json({ method: 'GET', path: objectPath(bucket, name), signal: options.signal });
  }

  /**
   * The object's bytes, or the inclusive range `start`-`end`, as a stream
   * that errors (never ends early) when the connection drops mid-body: the
   * bytes received are checked against Content-Length, and a premature close
   * is an error (ERR_STREAM_PREMATURE_CLOSE or the socket's own).
   */
  async download(bucket: string, name: string, options: DownloadOptions = {}): Promise<Readable> {
    // identity: bytes exactly as stored, so lengths and checksums hold.
    const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
    if (options.start !== undefined || options.end !== undefined) headers.Range = `bytes=${options.start ?? 0}-${options.end ?? ''}`;
    const outcome = await this.call({ method: 'GET', path: `${objectPath(bucket, name)}?alt=media`, headers, signal: options.signal, stream: true });
    if (!('res' in outcome)) throw new Error('internal: a download answered without a stream');
    outcome.req.setTimeout(this.bodyTimeoutMs);
    return checkedBody(outcome.res, options.wrapError ?? ((err) => err as Error), options.signal);
  }

  /**
   * Create (or, with a generation, replace) `name` with the concatenation of
   * `body` in one multipart request carrying its metadata and CRC32C, which
   * the server verifies before the object exists. Resolves with the new
   * object resource once its `crc32c` is checked against the bytes sent
   * (FILE_NO_UPLOAD error when it differs). A failed precondition is a
   * GcsHttpError 412.
   */
  async upload(bucket: string, name: string, body: readonly Buffer[], options: UploadOptions): Promise<Record<string, unknown>> {
    let crc = 0;
    for (const part of body) crc = crc32c(part, crc);
    const actual = crc32cBase64(crc);
    const contentType = options.contentType ?? 'application/octet-stream';
    const boundary = `gcwal-${randomToken(16)}`;
    const resource = JSON.stringify({ name, contentType, metadata: options.metadata ?? {}, crc32c: options.crc32c ?? actual });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${resource}\r\n--${boundary}\r\nContent-Type: ${contentType}\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const query = `uploadType=multipart&ifGenerationMatch=${encodeURIComponent(options.ifGenerationMatch)}`;
    const stored = await this.json({
      method: 'POST',
      path: `/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?${query}`,
      headers: { 'Content-Type': `multipart/related; boundary=${boundary}` },
      body: [head, ...body, tail],
      signal: options.signal,
    });
    return checkStored(stored, bucket, name, { crc32c: actual });
  }

  /**
   * The quickest the endpoint has answered so far: milliseconds from a
   * request's last byte sent to its answer's headers (connection set-up
   * excluded), over every request this client made; undefined before the
   * first answer. What one more request costs, for a caller deciding
   * whether to split a transfer into several.
   */
  get fastestTurnaroundMs(): number | undefined {
    return this.#fastestTurnaround;
  }

  /**
   * One request, retried as every request here is unless `exchange.retry` is
   * false; resolves with the answer when its status is 2xx or in
   * `exchange.accept`, throws a GcsHttpError for any other (after retries),
   * or the connection's error.
   */
  async exchange(exchange: Exchange): Promise<Answer> {
    const outcome = await this.call(exchange);
    if ('res' in outcome) throw new Error('internal: an exchange answered with a stream');
    return outcome;
  }

  /** Close idle connections (in-flight requests go on). */
  close(): void {
    this.agent.destroy();
  }

  private async json(exchange: Exchange): Promise<Record<string, unknown>> {
    const outcome = await this.call(exchange);
    if ('res' in outcome) throw new Error('internal: a JSON call answered with a stream');
    return jsonAnswer(outcome);
  }

  /** One call with its retries; resolves with a 2xx answer, throws everything else. */
  private async call(exchange: Exchange): Promise<Outcome> {
    let refreshed = false;
    const attempt = async (): Promise<Outcome> => {
      for (;;) {
        exchange.signal?.throwIfAborted();
        const outcome = await this.limiter.run(() => this.once(exchange));
        const status = 'res' in outcome ? (outcome.res.statusCode ?? 0) : outcome.status;
        if ((status >= 200 && status < 300) || exchange.accept?.includes(status)) {
          this.limiter.succeeded();
          return outcome;
        }
        // A token revoked or expired early: one more try with a fresh one, not counted.
        if (status === 401 && !refreshed && this.tokens.invalidate()) {
          refreshed = true;
          continue;
        }
        if (status === 429) this.limiter.throttled();
        throw errorOf(status, 'body' in outcome ? outcome.body : Buffer.alloc(0));
      }
    };
    return retry(attempt, { ...this.retryOptions(exchange.signal), retries: exchange.retry === false ? 0 : this.retries });
  }

  /** One request: headers from the token source, the answer's body read unless it is a 2xx to be streamed. */
  private async once(exchange: Exchange): Promise<Outcome> {
    const { req, res } = await this.request(exchange, this.tokens.headers(exchange.signal));
    const status = res.statusCode ?? 0;
    if (exchange.stream && status >= 200 && status < 300) return { res, req };
    return { status, headers: res.headers, body: await readAnswer(res) };
  }

  /**
   * Send `exchange` once `auth` (the token's headers) is in. The request is
   * made at once, so its connection (and TLS handshake, the first time) is
   * set up while the token is still being fetched; Node sends nothing before
   * end(), and the headers are complete by then. A token that fails aborts
   * the connection and is the error.
   */
  private request(exchange: Exchange, auth: Promise<Record<string, string>>): Promise<{ req: ClientRequest; res: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { 'User-Agent': 'gcwal', ...exchange.headers };
      if (exchange.body) headers['Content-Length'] = exchange.body.reduce((n, b) => n + b.length, 0);
      let sent: number | undefined;
      const req = this.lib.request(
        exchange.url ?? `${this.base}${exchange.path}`,
        { method: exchange.method, headers, agent: this.agent, signal: exchange.signal, timeout: this.timeoutMs },
        (res) => {
          if (sent !== undefined) {
            const turnaround = performance.now() - sent;
            if (this.#fastestTurnaround === undefined || turnaround < this.#fastestTurnaround) this.#fastestTurnaround = turnaround;
          }
          resolve({ req, res });
        },
      );
      // 'finish': the last byte is written to a connected socket, so the
      // time from here to the answer leaves out connecting and TLS.
      req.once('finish', () => (sent = performance.now()));
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer from Cloud Storage for ${Math.round(this.timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      auth.then(
        (tokenHeaders) => {
          // Aborted (or timed out) while the token came: the error is already out.
          if (req.destroyed) return;
          try {
            for (const [name, value] of Object.entries(tokenHeaders)) if (!req.hasHeader(name)) req.setHeader(name, value);
            for (const part of exchange.body ?? []) req.write(part);
            req.end();
          } catch (err) {
            reject(err);
            req.destroy();
          }
        },
        (err: unknown) => {
          reject(err);
          req.destroy();
        },
      );
    });
  }

  /** How this client retries: GcsHttpOptions.retries, with waits from 250 ms doubling up to maxRetryDelaySeconds, jittered. */
  private retryOptions(signal: AbortSignal | undefined): RetryOptions {
    return { retries: this.retries, baseMs: 250, maxMs: this.maxDelayMs, transient: isTransientFailure, signal };
  }

  /** Wait before retry `attempt` (0 for the first) as the client's own retries do, for callers that retry requests made with `retry: false` themselves; rejects when `signal` aborts. */
  async backoff(attempt: number, signal: AbortSignal | undefined): Promise<void> {
    await sleep(backoffDelay(attempt, 250, this.maxDelayMs), undefined, { signal });
  }
}

function objectPath(bucket: string, name: string): string {
  return `/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(name)}`;
}

/**
 * Whether a failed request is worth another try: an answer of 408, 429 or
 * 5xx, or a dropped or refused connection. For callers that retry a request
 * made with `retry: false` themselves.
 */
export function isTransientFailure(err: unknown): boolean {
  if (err instanceof GcsHttpError) return transientStatus(err.code);
  // A dropped keep-alive socket the server closed is one of these.
  return !(err instanceof GcwalError) && isTransientNetworkError(err);
}

/** 408, 429 and 5xx: answers worth another try. */
function transientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The JSON of a 2xx answer (an object resource); an Error naming the status when the body is not JSON. */
export function jsonAnswer(answer: Pick<Answer, 'status' | 'body'>): Record<string, unknown> {
  try {
    return JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`Cloud Storage answered HTTP ${answer.status} with a body that is not JSON: ${answer.body.subarray(0, 200).toString('utf8')}`);
  }
}

/**
 * `stored` (an upload's resource), once its `crc32c`, and its `size` when
 * given, are those of the bytes sent; else a FILE_NO_UPLOAD error (the
 * client library's code for it, which mapGcsError reads as damage in transit).
 */
export function checkStored(stored: Record<string, unknown>, bucket: string, name: string, sent: { crc32c: string; size?: number }): Record<string, unknown> {
  const sizeDiffers = sent.size !== undefined && Number(stored.size) !== sent.size;
  if (stored.crc32c === sent.crc32c && !sizeDiffers) return stored;
  const what =
    sent.size === undefined
      ? `CRC32C ${String(stored.crc32c)}, not the ${sent.crc32c} of the bytes sent`
      : `${String(stored.size)} bytes and CRC32C ${String(stored.crc32c)}, not the ${sent.size} bytes and ${sent.crc32c} sent`;
  throw Object.assign(new Error(`gs://${bucket}/${name} generation ${String(stored.generation)} was stored with ${what}`), { code: 'FILE_NO_UPLOAD' });
}

/** A GcsHttpError from an answer: Google's JSON error body when it is one, else the start of the text. */
function errorOf(status: number, body: Buffer): GcsHttpError {
  const text = body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown; errors?: unknown } };
    if (parsed?.error && typeof parsed.error.message === 'string') {
      return new GcsHttpError(status, parsed.error.message, Array.isArray(parsed.error.errors) ? (parsed.error.errors as GcsErrorDetail[]) : []);
    }
  } catch {
    // not JSON: keep the raw text
  }
  return new GcsHttpError(status, text.slice(0, 300).trim() || `HTTP ${status}`);
}
