import * as path from 'node:path';
import { ExitCode } from '../../core/errors.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import type { Command } from './types.ts';

/**
 * `gcwal wal-fetch <name> <dest>`: restore_command. Exit 1 is returned only
 * for "not in the archive"; every failure is thrown, and the CLI turns it
 * into exit 126 during archive recovery (agent/recovery-exit.ts).
 */
export const walFetch: Command = {
  name: 'wal-fetch',
  summary: 'restore one WAL file (restore_command)',
  usage: 'gcwal wal-fetch <name> <dest>',
  details: `
Restores one WAL file from the repository. Use as
  restore_command = 'gcwal wal-fetch %f %p'
dest is written atomically (temp name, fsync, rename) after its size and
CRC32C are verified. Exit 1 means only that the archive has no such file.
Transient errors are retried (GCWAL_RETRIES). No other failure is ever
reported as "not found": during archive recovery (run in a data directory
without standby.signal) every failure exits 126, which makes PostgreSQL stop
instead of ending recovery early and promoting with data missing; that
includes a bad command line or configuration (GCWAL_REPO unset or
malformed, an unreadable GCWAL_GCS_CA_FILE, a malformed GCWAL_* value), a
repository without gcwal.json, a missing bundle and an internal error. Fix
the cause and start PostgreSQL again: recovery resumes. On a standby
(standby.signal present), and outside a data directory, a failure exits with
its own code (below 126), so a standby keeps retrying.`,
  options: {},
  positionals: 2,
  async run(ctx, [name, dest]) {
    const storage = await ctx.storage();
    const result = await fetchWalFile(storage, name, path.resolve(ctx.cwd, dest), { retries: ctx.config.retries, log: ctx.log, signal: ctx.signal });
    if (result === 'not-found') {
      ctx.log.info(`${name} is not in the archive`);
      return ExitCode.notFound;
    }
    ctx.log.debug(`restored ${name}`);
    return ExitCode.ok;
  },
};
