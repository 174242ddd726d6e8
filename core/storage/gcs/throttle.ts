/**
 * Adaptive concurrency for calls to a rate-limited service: at most `limit`
 * calls run at once; a 429 halves the limit (never below 1), and every
 * `recoverAfter` successes raise it by one again, up to `max`. This is the
 * additive-increase/multiplicative-decrease rule TCP uses, and what GCS's
 * documentation asks of clients that hit rate limits.
 */
export class AdaptiveLimiter {
  private active = 0;
  private successes = 0;
  private readonly waiters: (() => void)[] = [];
  private current: number;

  constructor(
    private readonly max: number,
    private readonly recoverAfter = 8,
  ) {
    this.current = Math.max(1, max);
  }

  /** the current limit (for logs and tests) */
  get limit(): number {
    return this.current;
  }

  /** Run `fn` when a slot is free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** Report a rate-limit answer: halve the limit. */
  throttled(): void {
    this.current = Math.max(1, Math.floor(this.current / 2));
    this.successes = 0;
  }

  /** Report a success: after enough of them, allow one more concurrent call. */
  succeeded(): void {
    if (this.current >= this.max) return;
    if (++this.successes >= this.recoverAfter) {
      this.successes = 0;
      this.current++;
      this.wake();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.current) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiters.push(() => {
        this.active++;
        resolve();
      }),
    );
  }

  private release(): void {
    this.active--;
    this.wake();
  }

  private wake(): void {
    while (this.active < this.current && this.waiters.length > 0) this.waiters.shift()!();
  }
}
