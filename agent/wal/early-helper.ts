/**
 * For the WAL entry (agent/cli-wal.ts) only, imported before anything else:
 * starts wal-push's lzo helper thread while the rest of the bundle is still
 * being evaluated, because the thread needs 25-40 ms to start and the
 * compression it joins begins soon after. It reads the command name and the
 * codec from process.argv and process.env, as entries do; whether the helper
 * is then used is decided by wal-push from the configuration (it stops one
 * it does not need).
 */
import { availableParallelism } from 'node:os';
import { startLzopHelper, type LzopHelper } from '../../core/codec/lzop-parallel.ts';

/**
 * The helper if this process is a `wal-push` on a machine with more than one
 * CPU whose environment leaves the codec at lzo (its default), else
 * undefined. A `--compression` flag is not looked at here: wal-push stops
 * the helper when the configuration says another codec.
 */
export const earlyLzopHelper: LzopHelper | undefined =
  process.argv[2] === 'wal-push' && (process.env.GCWAL_COMPRESSION ?? 'lzo') === 'lzo' && !process.env.GCWAL_COMPRESSION_LEVEL && availableParallelism() > 1
    ? startLzopHelper({ primeTls: tlsAhead(process.argv.slice(3), process.env) })
    : undefined;

/**
 * Whether a wal-push with these arguments (after the command name) and this
 * environment will likely open TLS connections: a gs:// repository (from
 * GCWAL_REPO or a --repo argument) on an endpoint that is not plain http.
 * The helper then builds the root certificate store while this thread is
 * still loading (see LzopWorkerData.primeTls); a wrong guess costs the
 * helper 20 ms, never correctness. Pure.
 */
export function tlsAhead(args: readonly string[], env: Readonly<Record<string, string | undefined>>): boolean {
  const repos = [env.GCWAL_REPO, ...args.map((arg) => arg.replace(/^--repo=/, ''))];
  if (!repos.some((repo) => repo?.startsWith('gs://'))) return false;
  const endpoint = env.GCWAL_GCS_ENDPOINT ?? env.STORAGE_EMULATOR_HOST ?? '';
  return !endpoint.toLowerCase().startsWith('http://');
}
