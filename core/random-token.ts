/**
 * Random tokens for temporary file names and lock nonces: unique enough that
 * two writers never pick the same one, not secrets. Math.random rather than
 * node:crypto on purpose: loading node:crypto (some twenty internal modules)
 * costs a few milliseconds of every wal-push's start-up, and none of these
 * uses needs unpredictability. Names built from it are still created
 * exclusively (O_EXCL, link), so even a collision could not clobber anything.
 */
export function randomToken(bytes = 8): string {
  let out = '';
  for (let i = 0; i < bytes; i++)
    out += Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, '0');
  return out;
}
