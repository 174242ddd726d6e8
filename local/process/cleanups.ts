/**
 * Undoing a partial start: each start step pushes how to undo itself, and on
 * failure or close they run newest first.
 */

/** Run cleanups newest first; all run even if one fails, and the first failure is rethrown. */
export async function runCleanups(cleanups: readonly (() => Promise<void>)[]): Promise<void> {
  let first: unknown;
  for (const cleanup of [...cleanups].reverse()) {
    try {
      await cleanup();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
