import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { asGcwalError, ExitCode, GcwalError } from '../../core/errors.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import type { Command } from './types.ts';

/**
 * Whether restore_command is running for archive recovery (PITR) rather than
 * for a standby. PostgreSQL runs restore_command in the data directory, so
 * the signal files tell. Outside a data directory (a person at a shell) it
 * is neither.
 */
export function recoveryMode(cwd: string): 'archive-recovery' | 'standby' | 'none' {
  if (!existsSync(path.join(cwd, 'PG_VERSION'))) return 'none';
  return existsSync(path.join(cwd, 'standby.signal')) ? 'standby' : 'archive-recovery';
}

/** `gcwal wal-fetch <name> <dest>`: restore_command. */
export const walFetch: Command = {
  name: 'wal-fetch',
  summary: 'restore one WAL file (restore_command)',
  usage: 'gcwal wal-fetch <name> <dest>',
  details: `
Restores one WAL file from the repository. Use as
  restore_command = 'gcwal wal-fetch %f %p'
dest is written atomically (temp name, fsync, rename) after its size and
CRC32C are verified. Exit 1 means only that the archive has no such file.
Transient errors are retried (GCWAL_RETRIES). A persistent error is never
reported as "not found": during archive recovery (the data directory has no
standby.signal) gcwal exits 126, which makes PostgreSQL stop instead of ending
recovery early and promoting with data missing; on a standby, and outside a
data directory, it exits with the error's own code (below 126), so a standby
keeps retrying.`,
  options: {},
  positionals: 2,
  async run(ctx, [name, dest]) {
    try {
      const storage = await ctx.storage();
      const result = await fetchWalFile(storage, name, path.resolve(ctx.cwd, dest), { retries: ctx.config.retries, log: ctx.log, signal: ctx.signal });
      if (result === 'not-found') {
        ctx.log.info(`${name} is not in the archive`);
        return ExitCode.notFound;
      }
      ctx.log.debug(`restored ${name}`);
      return ExitCode.ok;
    } catch (err) {
      const e = asGcwalError(err);
      if (recoveryMode(ctx.cwd) !== 'archive-recovery' || e.exitCode === ExitCode.usage) throw e;
      throw new GcwalError(e.code, `${e.message}; stopping recovery so that it does not end early`, `${e.hint}, then start PostgreSQL again to resume recovery`, ExitCode.recoveryFatal, { cause: e });
    }
  },
};
