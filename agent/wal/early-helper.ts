/**
 * For the WAL entry (agent/wal/cli.ts) only, imported before anything else:
 * starts wal-push's lzo helper thread while the rest of the bundle is still
 * being evaluated, because the thread is slow to start and the compression
 * it joins begins soon after. It reads the command name and the codec from
 * process.argv and process.env, as entries do; the rule is helper.ts's, and
 * archive.ts applies it again to the configuration (stopping a helper it
 * does not need).
 */
import { availableParallelism } from 'node:os';
import { type LzopHelper, startLzopHelper } from '../../core/codec/lzo/parallel.ts';
import { wantsLzopHelper } from './helper.ts';

/**
 * The helper if this process is a `wal-push` on a machine with more than one
 * CPU whose environment leaves the codec at lzo (its default), else
 * undefined. A `--compression` flag is not looked at here: wal-push stops
 * the helper when the configuration says another codec.
 */
export const earlyLzopHelper: LzopHelper | undefined =
  process.argv[2] === 'wal-push' &&
  wantsLzopHelper(process.env.GCWAL_COMPRESSION ?? 'lzo', process.env.GCWAL_COMPRESSION_LEVEL || undefined, availableParallelism())
    ? startLzopHelper()
    : undefined;
