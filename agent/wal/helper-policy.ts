/**
 * When wal-push compresses with the lzo helper thread (core/codec/lzop-parallel.ts).
 */

/**
 * Whether a wal-push into `repo` (a repository URL; undefined when none is
 * known yet) is worth a helper thread. Not into gs://: there the push waits
 * on the network (TLS set-up, the repository's answer, the upload), and one
 * thread has compressed a segment by about the time the upload can start;
 * the helper's start-up (25 ms of a CPU) then only competes with that TLS
 * work: on 2 CPUs, 166.6 ms per push without it against 174.5 ms with it
 * (median of 12 each, same run). Into file:// it pays (see bench/README.md).
 * Pure.
 */
export function lzoHelperWanted(repo: string | undefined): boolean {
  return !repo?.startsWith('gs://');
}
