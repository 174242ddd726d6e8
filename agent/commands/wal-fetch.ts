import * as path from 'node:path';
import { ExitCode } from '../../core/errors.ts';
import { LAUNCHER_CHILD_ENV, NOT_FOUND_FOR_LAUNCHER } from '../recovery-exit.ts';
import { restoreWalFile } from '../wal/restore.ts';
import type { Command } from './types.ts';

/**
 * `gcwal wal-fetch <name> <dest>`: restore_command; agent/wal/restore.ts
 * does the work (agent/wal/README.md). Exit 1 is returned only
 * for "not in the archive" (NOT_FOUND_FOR_LAUNCHER to the launcher that runs
 * it as a child in archive recovery); every failure is thrown, and the CLI
 * turns it into exit 126 during archive recovery (agent/recovery-exit.ts).
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
its own code (below 126), so a standby keeps retrying.

During recovery (run by PostgreSQL in its data directory with %p in
pg_wal), a segment request also starts one background process that fetches
the next GCWAL_PREFETCH segments of the same timeline (GCWAL_PREFETCH_CONCURRENCY
at once, at most GCWAL_PREFETCH_SPOOL_SIZE on disk), verified, into
pg_wal/.gcwal-spool/; a later call for one of them is a rename, answered by
the launcher without starting Node. A spooled file counts only for the same
repository and the same restore (the data directory's PG_VERSION), and only
while its size and CRC32C are intact; .history, .partial and .backup files
are always fetched. A prefetch that failed is never served: the call fetches
the segment itself and reports its own outcome. The spool is removed when
recovery ends, the postmaster stops, or no call came for a minute.`,
  options: {},
  positionals: 2,
  async run(ctx, [name, dest]) {
    const result = await restoreWalFile(name, path.resolve(ctx.cwd, dest), {
      config: ctx.config,
      cwd: ctx.cwd,
      env: ctx.env,
      storage: () => ctx.storage(),
      log: ctx.log,
      signal: ctx.signal,
    });
    if (result === 'restored') return ExitCode.ok;
    // The launcher waiting for us (archive recovery) turns this back into 1.
    return ctx.env[LAUNCHER_CHILD_ENV] === '1' ? NOT_FOUND_FOR_LAUNCHER : ExitCode.notFound;
  },
};
