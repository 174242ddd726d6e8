/**
 * Milliseconds to wait before retry `attempt` (0 for the first retry):
 * `baseMs`·2^attempt, capped at `maxMs`, and with `jitter` scaled by a
 * random factor in [0.5, 1) so that clients failing together do not retry
 * together. Pure but for the random factor.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, jitter = true): number {
  const ms = Math.min(maxMs, baseMs * 2 ** attempt);
  return jitter ? ms * (0.5 + Math.random() / 2) : ms;
}
