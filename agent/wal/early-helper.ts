/**
 * For the WAL entry (agent/cli-wal.ts) only, imported before anything else:
 * starts wal-push's lzo helper thread while the rest of the bundle is still
 * being evaluated, because the thread needs 25-40 ms to start and the
 * compression it joins begins soon after. It reads the command name from
 * process.argv, as entries do; whether the helper is then used is decided
 * by wal-push from the configuration (it stops one it does not need).
 */
import { availableParallelism } from 'node:os';
import { startLzopHelper, type LzopHelper } from '../../core/codec/lzop-parallel.ts';

/** The helper if this process is a `wal-push` on a machine with more than one CPU, else undefined. */
export const earlyLzopHelper: LzopHelper | undefined = process.argv[2] === 'wal-push' && availableParallelism() > 1 ? startLzopHelper() : undefined;
