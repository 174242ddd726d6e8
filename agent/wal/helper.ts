/**
 * When wal-push compresses with a helper thread (core/codec/lzo/parallel.ts):
 * one rule, read twice. early-helper.ts reads it from argv and the
 * environment before the configuration exists, so that the thread starts
 * while the WAL entry's bundle is still being evaluated; archive.ts reads it
 * from the configuration, and stops an early helper the configuration does
 * not want (a --compression flag, which the early reading does not see).
 */

/**
 * Whether a push compresses with the helper thread: lzo at its one level
 * (`level` undefined) on a machine with more than one CPU. The helper only
 * splits lzo's blocks between two threads; other codecs run on one.
 */
export function wantsLzopHelper(codec: string, level: unknown, cpus: number): boolean {
  return codec === 'lzo' && level === undefined && cpus > 1;
}
