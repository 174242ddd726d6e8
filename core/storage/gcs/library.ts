/**
 * The @google-cloud/storage client behind the gs:// driver's listings and
 * deletes (never its writes: resumable.ts is the one resumable uploader):
 * loaded on first use only, because loading it costs start-up time that
 * wal-push and wal-fetch never need (docs/performance.md).
 */
import https from 'node:https';
import { createRequire } from 'node:module';
import type { Bucket, Storage as GcsClient } from '@google-cloud/storage';
import type { AuthClient, GoogleAuth } from 'google-auth-library';
import { isTransientNetworkError, TRANSIENT_NETWORK_CODES } from '../../retry.ts';
import { httpStatus, isRateLimited } from './errors.ts';
import type { AdaptiveLimiter } from './throttle.ts';

/** The GcsStorageOptions the client library is built with. */
export interface LibraryClientOptions {
  endpoint?: string;
  /** CA certificates (PEM) trusted for the endpoint instead of the default roots */
  ca?: Buffer;
  projectId?: string;
  retries?: number;
  maxRetryDelaySeconds?: number;
}

/**
 * A client library instance for `bucketName`, authenticating with
 * `authClient` (from loadGoogleAuth). It retries on 408/429/5xx and dropped
 * connections with exponential backoff and jitter (GET, list and
 * precondition-guarded writes and deletes); each 429 also tells `limiter`.
 */
export function createLibraryClient(
  options: LibraryClientOptions,
  authClient: GoogleAuth | AuthClient,
  limiter: AdaptiveLimiter,
  bucketName: string,
): { client: GcsClient; bucket: Bucket } {
  // require() its CommonJS build: faster to load than import() of its ESM
  // build (docs/performance.md).
  const { Storage: GcsStorageClient, IdempotencyStrategy } = createRequire(import.meta.url)('@google-cloud/storage') as typeof import('@google-cloud/storage');
  // The library takes its base URL from STORAGE_EMULATOR_HOST even over
  // apiEndpoint, so listings and deletes would go elsewhere than every other
  // call: the variable is hidden from it while it is made.
  const emulatorHost = process.env.STORAGE_EMULATOR_HOST;
  if (options.endpoint !== undefined) delete process.env.STORAGE_EMULATOR_HOST;
  let client: GcsClient;
  try {
    client = new GcsStorageClient({
      authClient: authClient as never,
      projectId: options.projectId,
      apiEndpoint: options.endpoint,
      useAuthWithCustomEndpoint: true,
      retryOptions: {
        // maxRetries 0 alone still retries with the library's default count.
        autoRetry: (options.retries ?? 5) > 0,
        maxRetries: options.retries ?? 5,
        retryDelayMultiplier: 2,
        maxRetryDelay: options.maxRetryDelaySeconds ?? 32,
        totalTimeout: 300,
        idempotencyStrategy: IdempotencyStrategy.RetryConditional,
        retryableErrorFn: (err) => {
          if (isRateLimited(err)) limiter.throttled();
          const status = httpStatus(err);
          if (status !== undefined) return status === 408 || status === 429 || status >= 500;
          // The library's errors often carry the code only in their message ("... reason: connect ECONNREFUSED ...").
          const text = `${err.code ?? ''} ${err.message ?? ''}`;
          return (
            isTransientNetworkError(err) ||
            [...TRANSIENT_NETWORK_CODES].some((code) => text.includes(code)) ||
            /socket hang up|premature|connection|network/i.test(text)
          );
        },
      },
    });
  } finally {
    if (emulatorHost !== undefined) process.env.STORAGE_EMULATOR_HOST = emulatorHost;
  }
  if (options.ca) trustOnly(client, options.ca);
  return { client, bucket: client.bucket(bucketName) };
}

/**
 * Make every request of `client` trust `ca` instead of the default roots.
 * JSON API calls go through teeny-request, which ignores a request's
 * `agent` but builds its keep-alive agent from `pool` (gaxios, for other
 * calls, takes `agent`; the library hands both the options its
 * interceptors return). teeny-request keeps that agent for the process,
 * whose one endpoint this is.
 */
function trustOnly(client: GcsClient, ca: Buffer): void {
  const agent = new https.Agent({ keepAlive: true, ca });
  client.interceptors.push({
    request: (reqOpts) => {
      const opts = reqOpts as typeof reqOpts & { agent?: unknown; forever?: boolean; pool?: object };
      opts.agent = agent;
      opts.forever = true;
      opts.pool = { ...(opts.pool ?? {}), ca };
      return reqOpts as never;
    },
  });
}
