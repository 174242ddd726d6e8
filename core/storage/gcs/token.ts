/**
 * Where the gs:// driver gets the `Authorization` header of its own requests.
 *
 * Two sources: the GCE/GKE metadata server asked directly over node:http (a
 * few milliseconds, nothing to load), and google-auth-library for every other
 * kind of credentials (key files, workload identity federation, gcloud's
 * ADC file, impersonation). Which one applies is decided at the config edge
 * (agent/config.ts), which knows the environment; core only gets a host.
 */
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { AuthClient, GoogleAuth } from 'google-auth-library';
import { AuthError } from '../../errors.ts';
import { isTransientNetworkError, retry } from '../../retry.ts';

/** Scope the agent asks for: object read/write, nothing else. */
export const GCS_SCOPES = ['https://www.googleapis.com/auth/devstorage.read_write'];

/** An access-token source for the driver's requests. */
export interface TokenSource {
  /**
   * Headers that authorise one request (`Authorization: Bearer …`). Throws
   * AuthError (or an error mapGcsError turns into one) when no token can be
   * had; the signal only stops this caller waiting, not a shared fetch.
   */
  headers(signal?: AbortSignal): Promise<Record<string, string>>;
  /**
   * Forget the cached token after the server refused it (401), so the next
   * `headers` fetches a new one. Returns whether a retry can help, i.e.
   * whether there was a cached token to drop.
   */
  invalidate(): boolean;
  /** The service account the tokens are for, for error messages; undefined when unknown. Never throws. */
  identity(): Promise<string | undefined>;
}

/** How to reach the metadata server. */
export interface MetadataTokenOptions {
  /** `host[:port]` (GCE_METADATA_HOST / GCE_METADATA_IP) or a URL with an http(s) scheme */
  host: string;
  /** default GCS_SCOPES */
  scopes?: readonly string[];
  /** one request's deadline; default 3000 ms (what gcp-metadata allows its detection) */
  timeoutMs?: number;
  /** retries of a 5xx/429 or a dropped connection; default 3 */
  retries?: number;
  /** the clock, in ms since the epoch (tests) */
  now?: () => number;
}

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';
const EMAIL_PATH = '/computeMetadata/v1/instance/service-accounts/default/email';
const HINT =
  'run gcwal where a service account is attached (a Compute Engine VM or a GKE workload with workload identity), or set GOOGLE_APPLICATION_CREDENTIALS to a credentials file';

interface Answer {
  status: number;
  body: string;
}

/** A 5xx or 429 from the metadata server: retried; the last one is refused like any other answer. */
class BusyAnswer extends Error {
  constructor(readonly answer: Answer) {
    super(`the metadata server answered HTTP ${answer.status}`);
  }
}

/**
 * Tokens of the instance's default service account, straight from the
 * metadata server (no google-auth-library). The token is cached in the
 * instance until five minutes (at most half its lifetime) before it expires;
 * concurrent callers share one request. Any failure to get one is an
 * AuthError naming the metadata host and what to do.
 */
export class MetadataServerTokens implements TokenSource {
  readonly #base: URL;
  readonly #lib: typeof http | typeof https;
  readonly #agent: http.Agent;
  readonly #scopes: readonly string[];
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #now: () => number;
  #token: { header: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;
  #identity: Promise<string | undefined> | undefined;

  constructor(options: MetadataTokenOptions) {
    this.#base = new URL(/^https?:\/\//i.test(options.host) ? options.host : `http://${options.host}`);
    this.#lib = this.#base.protocol === 'https:' ? https : http;
    this.#agent = new this.#lib.Agent({ keepAlive: true, maxSockets: 2 });
    this.#scopes = options.scopes ?? GCS_SCOPES;
    this.#timeoutMs = options.timeoutMs ?? 3000;
    this.#retries = options.retries ?? 3;
    this.#now = options.now ?? Date.now;
  }

  /** the metadata server, as messages name it */
  get host(): string {
    return this.#base.host;
  }

  async headers(signal?: AbortSignal): Promise<Record<string, string>> {
    signal?.throwIfAborted();
    if (this.#token && this.#now() < this.#token.refreshAt) return { Authorization: this.#token.header };
    this.#pending ??= this.#fetchToken().finally(() => {
      this.#pending = undefined;
    });
    return { Authorization: await abortable(this.#pending, signal) };
  }

  invalidate(): boolean {
    const had = this.#token !== undefined;
    this.#token = undefined;
    return had;
  }

  identity(): Promise<string | undefined> {
    // Asked only when a message needs it; one try, failures just leave it unnamed.
    this.#identity ??= this.#get(EMAIL_PATH)
      .then((a) => (a.status === 200 && /^\S+@\S+$/.test(a.body.trim()) ? a.body.trim() : undefined))
      .catch(() => undefined);
    return this.#identity;
  }

  async #fetchToken(): Promise<string> {
    const path = `${TOKEN_PATH}?scopes=${encodeURIComponent(this.#scopes.join(','))}`;
    let answer: Answer;
    try {
      answer = await retry(
        async () => {
          const got = await this.#get(path);
          if (got.status >= 500 || got.status === 429) throw new BusyAnswer(got);
          return got;
        },
        // A timeout is tried again too: a busy host (or a loaded metadata server) can miss one deadline.
        { retries: this.#retries, baseMs: 100, maxMs: 1000, transient: (err) => err instanceof BusyAnswer || isTransientNetworkError(err) },
      );
    } catch (err) {
      if (!(err instanceof BusyAnswer)) {
        const code = (err as { code?: string }).code ?? '';
        const what =
          code === 'ETIMEDOUT'
            ? `did not answer within ${this.#timeoutMs} ms, ${this.#retries + 1} times`
            : code === 'ENOTMETADATA'
              ? 'is not a metadata server (its answer lacks Metadata-Flavor: Google)'
              : `could not be reached (${code || (err as Error).message})`;
        throw new AuthError(`no access token: the metadata server at ${this.host} ${what}`, `${HINT} (GCE_METADATA_HOST names another metadata server)`, {
          cause: err,
        });
      }
      answer = err.answer;
    }
    if (answer.status !== 200) throw await this.#refused(answer);
    let parsed: { access_token?: unknown; expires_in?: unknown; token_type?: unknown };
    try {
      parsed = JSON.parse(answer.body) as typeof parsed;
    } catch (err) {
      throw new AuthError(
        `no access token: the metadata server at ${this.host} answered something that is not JSON (${firstLine(answer.body)})`,
        `check that ${this.host} is a metadata server; ${HINT}`,
        { cause: err },
      );
    }
    const token = parsed?.access_token;
    const lifetime = Number(parsed?.expires_in);
    if (typeof token !== 'string' || token === '' || !(lifetime > 0)) {
      throw new AuthError(
        `no access token: the metadata server at ${this.host} answered without access_token and expires_in`,
        `check that ${this.host} is a metadata server; ${HINT}`,
      );
    }
    const margin = Math.min(300, lifetime / 2) * 1000;
    const header = `${typeof parsed.token_type === 'string' && parsed.token_type ? parsed.token_type : 'Bearer'} ${token}`;
    this.#token = { header, refreshAt: this.#now() + lifetime * 1000 - margin };
    return header;
  }

  /** The AuthError for a refused token request, naming the account when the server tells it. */
  async #refused(answer: Answer): Promise<AuthError> {
    const who = (await this.identity()) ?? 'the default service account';
    const hint =
      answer.status === 404
        ? `no service account is attached to this instance: ${HINT}`
        : answer.status === 403
          ? `the service account may be disabled, or the instance lacks the devstorage.read_write (or cloud-platform) access scope: check it, or ${HINT}`
          : HINT;
    return new AuthError(`no access token for ${who}: the metadata server at ${this.host} answered HTTP ${answer.status} (${firstLine(answer.body)})`, hint);
  }

  /** One GET with Metadata-Flavor: Google, under the deadline; rejects on network errors with their code. */
  #get(path: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = this.#lib.request(new URL(path, this.#base), { method: 'GET', agent: this.#agent, headers: { 'Metadata-Flavor': 'Google' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        res.on('end', () => {
          clearTimeout(timer);
          // Anything else on that address (a proxy, a web server) is not a metadata server.
          if (res.headers['metadata-flavor'] !== 'Google') {
            reject(Object.assign(new Error(`${this.host} answered HTTP ${res.statusCode} without Metadata-Flavor: Google`), { code: 'ENOTMETADATA' }));
            return;
          }
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
      });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${this.#timeoutMs} ms`), { code: 'ETIMEDOUT' })), this.#timeoutMs);
      timer.unref();
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end();
    });
  }
}

/** The credentials google-auth-library found, and the account they act as when already known. */
export interface LibraryAuth {
  client: GoogleAuth | AuthClient;
  identity: string | undefined;
}

/**
 * Application Default Credentials through google-auth-library, optionally
 * impersonating `impersonate`: the copy @google-cloud/storage depends on, so
 * the same client can also be handed to that library. Loaded with require()
 * on first call, not at import: loading it is a start-up cost
 * (docs/performance.md).
 */
export async function loadGoogleAuth(options: { projectId?: string; impersonate?: string }): Promise<LibraryAuth> {
  // Use the google-auth-library the storage client itself depends on:
  // its auth clients must match the client's own version of the library.
  const { GoogleAuth: Auth, Impersonated } = createRequire(import.meta.resolve('@google-cloud/storage'))(
    'google-auth-library',
  ) as typeof import('google-auth-library');
  const auth = new Auth({ scopes: GCS_SCOPES, projectId: options.projectId });
  if (!options.impersonate) return { client: auth, identity: undefined };
  const client = new Impersonated({
    sourceClient: await auth.getClient(),
    targetPrincipal: options.impersonate,
    targetScopes: GCS_SCOPES,
    lifetime: 3600,
    delegates: [],
  });
  return { client, identity: options.impersonate };
}

/**
 * Tokens from google-auth-library (`load` is called on every request and
 * must cache). A failure that retrying may cure (a dropped connection, a
 * 408/429/5xx from a token endpoint) is passed on as it is, for the caller
 * to retry; any other (no credentials found, an unreadable key file, a
 * refused impersonation) is an AuthError.
 */
export class GoogleAuthTokens implements TokenSource {
  constructor(private readonly load: () => Promise<LibraryAuth>) {}

  async headers(signal?: AbortSignal): Promise<Record<string, string>> {
    signal?.throwIfAborted();
    let raw: Record<string, string> | Headers;
    try {
      const { client } = await this.load();
      // Version 9 answers a plain object, version 10 a Headers instance.
      raw = (await abortable(client.getRequestHeaders() as Promise<unknown>, signal)) as Record<string, string> | Headers;
    } catch (err) {
      if (signal?.aborted || transientLibraryError(err)) throw err;
      const who = (await this.identity()) ?? 'the application default credentials';
      throw new AuthError(`no access token for ${who} from google-auth-library: ${firstLine((err as Error)?.message ?? String(err))}`, LIBRARY_HINT, {
        cause: err,
      });
    }
    const out: Record<string, string> = {};
    if (typeof (raw as Headers).forEach === 'function' && typeof (raw as Headers).get === 'function')
      (raw as Headers).forEach((value, name) => (out[name] = value));
    else Object.assign(out, raw);
    return out;
  }

  invalidate(): boolean {
    // The library refreshes by itself when the token nears expiry.
    return false;
  }

  async identity(): Promise<string | undefined> {
    try {
      const { client, identity } = await this.load();
      if (identity) return identity;
      const creds = await (client as GoogleAuth).getCredentials?.();
      return creds?.client_email ?? undefined;
    } catch {
      // The error being reported is more useful than this one.
      return undefined;
    }
  }
}

const LIBRARY_HINT =
  'on GCE/GKE check the attached service account; elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a key, external_account or impersonated_service_account file; with GCWAL_IMPERSONATE_SERVICE_ACCOUNT the credentials need roles/iam.serviceAccountTokenCreator on that account';

/** Whether a google-auth-library failure may pass if tried again: the connection broke or the token endpoint was busy. */
function transientLibraryError(err: unknown, depth = 0): boolean {
  const e = err as { code?: unknown; type?: unknown; status?: unknown; response?: { status?: unknown }; cause?: unknown; error?: unknown } | undefined;
  if (isTransientNetworkError(e)) return true;
  // The metadata server not answering in time (node-fetch's FetchError, which gaxios wraps) is the network, not the credentials.
  if (e?.type === 'request-timeout') return true;
  const status = Number(e?.response?.status ?? e?.status ?? (typeof e?.code === 'string' && /^\d{3}$/.test(e.code) ? e.code : NaN));
  if (status === 408 || status === 429 || status >= 500) return true;
  return depth < 3 && [e?.cause, e?.error].some((inner) => inner !== undefined && inner !== err && transientLibraryError(inner, depth + 1));
}

/** `promise`, or the signal's reason as soon as it aborts (the work itself goes on for other waiters). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function firstLine(text: string): string {
  // The stand-in and GCE answer errors as HTML pages; keep the words.
  const plain = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return (plain.length > 200 ? `${plain.slice(0, 200)}…` : plain) || 'empty answer';
}
