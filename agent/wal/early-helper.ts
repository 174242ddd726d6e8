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
import { startLzopHelper, type LzopHelper } from '../../core/codec/lzo/parallel.ts';

/**
 * The helper if this process is a `wal-push` on a machine with more than one
 * CPU whose environment leaves the codec at lzo (its default), else
 * undefined. A `--compression` flag is not looked at here: wal-push stops
 * the helper when the configuration says another codec.
 */
export const earlyLzopHelper: LzopHelper | undefined =
  process.argv[2] === 'wal-push' && (process.env.GCWAL_COMPRESSION ?? 'lzo') === 'lzo' && !process.env.GCWAL_COMPRESSION_LEVEL && availableParallelism() > 1 ? startLzopHelper() : undefined;
