/**
 * Cloud Storage's write rate per object name: about one mutation per second
 * of the same name (create, overwrite, metadata update, delete); beyond that
 * it answers 429 `rateLimitExceeded`. The emulator enforces it so code that
 * rewrites one object in a hot loop (a catalogue, an alert state) fails here
 * as it would on Google, not first in production. Only mutations that
 * succeed count; a refused one (precondition, 429) changes nothing.
 */
import { ApiError } from './errors.ts';

/** The default interval between two mutations of one object name. */
export const DEFAULT_MUTATION_INTERVAL_MS = 1000;

/** The environment variable `gcwal local` and the emulator's main read: `off`, or milliseconds between mutations of one name. */
export const RATE_LIMIT_ENV = 'GCWAL_GCS_OBJECT_RATE_LIMIT_MS';

/** Remembers when each object name was last mutated; call `check` then `record` under the name's lock. */
export class MutationRateLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    /** least time between two mutations of one name */
    readonly intervalMs: number = DEFAULT_MUTATION_INTERVAL_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Throw GCS's 429 when `bucket/name` was mutated less than `intervalMs` ago. */
  check(bucket: string, name: string): void {
    const at = this.last.get(key(bucket, name));
    if (at !== undefined && this.clock() - at < this.intervalMs) {
      throw new ApiError(
        429,
        'rateLimitExceeded',
        `The object ${bucket}/${name} exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429.`,
      );
    }
  }

  /** Note a successful mutation of `bucket/name` now; forgets names idle for longer than the interval. */
  record(bucket: string, name: string): void {
    const now = this.clock();
    if (this.last.size > 10_000) for (const [k, at] of this.last) if (now - at >= this.intervalMs) this.last.delete(k);
    this.last.set(key(bucket, name), now);
  }
}

function key(bucket: string, name: string): string {
  return `${bucket}\u0000${name}`;
}

/**
 * The limiter an option asks for: `false` or `0` for none, a number for that
 * interval, undefined for the default one-per-second.
 */
export function rateLimiterFor(option: number | false | undefined): MutationRateLimiter | undefined {
  if (option === false || option === 0) return undefined;
  return new MutationRateLimiter(option ?? DEFAULT_MUTATION_INTERVAL_MS);
}

/** The option from an environment value: `off`/`0` for none, milliseconds, unset for the default. */
export function rateLimitFromEnv(value: string | undefined): number | false | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'off' || value === '0') return false;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`${RATE_LIMIT_ENV} "${value}" is not "off" or a whole number of milliseconds`);
  return ms;
}
