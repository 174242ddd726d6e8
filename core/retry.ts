/**
 * gcwal's one retry loop: tries, exponential backoff with jitter
 * (core/backoff.ts), an optional deadline, and the caller's word on what is
 * transient. Each call site passes its own limits; see the callers for why
 * theirs are what they are.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from './backoff.ts';

export interface RetryOptions {
  /** retries after the first try (so at most `retries + 1` tries); Infinity with a `deadline` */
  retries: number;
  /** the wait before the first retry in ms, doubled for each one after */
  baseMs: number;
  /** the longest one wait in ms */
  maxMs: number;
  /** scale each wait by a random factor in [0.5, 1), so that clients failing together do not retry together; default true */
  jitter?: boolean;
  /**
   * On `now`'s clock: a failure at or after it is not retried, and no wait
   * runs past it (the last try starts at the deadline at the latest).
   */
  deadline?: number;
  /** whether a failure is worth another try; anything else is thrown at once */
  transient: (err: unknown) => boolean;
  /**
   * Called before each wait with the retry's number (1 for the first), the
   * failure and the wait in ms; awaited, so it may undo what the failed try
   * left behind.
   */
  onRetry?: (retry: number, err: unknown, delayMs: number) => void | Promise<void>;
  /** no retry once aborted (the failure is thrown); a wait it ends rejects with an AbortError whose cause is the signal's reason */
  signal?: AbortSignal;
  /** the clock `deadline` is on; default Date.now */
  now?: () => number;
}

/**
 * Run `attempt` (given its number, 0 for the first try) until it resolves,
 * and return what it resolves with. A failure is thrown as it is when it is
 * not transient, when the retries are used up, when the deadline has passed
 * or when the signal has aborted; otherwise the next try follows a wait of
 * `backoffDelay(retry - 1, baseMs, maxMs, jitter)`.
 */
export async function retry<T>(attempt: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (n >= options.retries || options.signal?.aborted || !options.transient(err)) throw err;
      let delay = backoffDelay(n, options.baseMs, options.maxMs, options.jitter ?? true);
      if (options.deadline !== undefined) {
        const left = options.deadline - now();
        if (left <= 0) throw err;
        delay = Math.min(delay, left);
      }
      await options.onRetry?.(n + 1, err, delay);
      if (delay > 0) await sleep(delay, undefined, { signal: options.signal });
    }
  }
}

/**
 * Connection-level failures, from node:http, undici and DNS: the exchange
 * broke or the peer could not be reached for now, so another try may pass.
 * The one list every network client in core consults.
 */
export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** Whether `err` is such a failure: its `code` is in TRANSIENT_NETWORK_CODES, or Node's message for a dropped connection. */
export function isTransientNetworkError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string' && TRANSIENT_NETWORK_CODES.has(e.code)) return true;
  return /socket hang up|other side closed|premature close/i.test(String(e?.message ?? ''));
}
