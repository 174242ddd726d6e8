/**
 * What a failed restore_command tells PostgreSQL: the one place in Node that
 * decides it. The launcher (agent/wal/launcher.sh) applies the same rule, from
 * the same files, to the failures it reports before Node starts.
 *
 * PostgreSQL reads any exit status 1-125 of restore_command as "this file is
 * not in the archive"; in archive recovery it then ends recovery (and, without
 * a target, promotes) with whatever the archive still held left out. So when
 * wal-fetch runs for archive recovery, every failure but "not in the archive"
 * (exit 1, which wal-fetch returns and never throws) exits 126, which makes
 * PostgreSQL stop instead: a usage or configuration error, an error raised
 * before the command runs, a storage error, a bug. On a standby, which asks
 * again and must not die of an exit above 125, and at a shell, a failure keeps
 * its own code.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { ExitCode, GcwalError } from '../core/errors.ts';

/** The command restore_command runs. */
export const RESTORE_COMMAND = 'wal-fetch';

/** Why PostgreSQL would be running restore_command in a directory. */
export type RecoveryMode = 'archive-recovery' | 'standby' | 'none';

/**
 * Whether `cwd` is a data directory in archive recovery (PITR) or on a
 * standby. PostgreSQL runs restore_command in the data directory, so the
 * files tell: PG_VERSION marks a data directory, standby.signal a standby.
 * Outside a data directory (a person at a shell) it is neither.
 */
export function recoveryMode(cwd: string): RecoveryMode {
  if (!existsSync(path.join(cwd, 'PG_VERSION'))) return 'none';
  return existsSync(path.join(cwd, 'standby.signal')) ? 'standby' : 'archive-recovery';
}

/**
 * The error a failed run of `command` (the first word of the command line) in
 * `cwd` ends with: `err` itself, or, for wal-fetch in a data directory in
 * archive recovery, `err` with exit 126 and a message and hint saying so. An
 * exit code above 125 (an interruption) already stops recovery and is kept.
 */
export function failureForRecovery(command: string | undefined, cwd: string, err: GcwalError): GcwalError {
  if (command !== RESTORE_COMMAND || err.exitCode > 125 || recoveryMode(cwd) !== 'archive-recovery') return err;
  return new GcwalError(
    err.code,
    `${err.message}; stopping recovery so that it does not end early`,
    `${err.hint}, then start PostgreSQL again to resume recovery`,
    ExitCode.recoveryFatal,
    { cause: err },
  );
}

/**
 * Set (to 1) by the launcher when it runs wal-fetch as its child in archive
 * recovery instead of exec'ing Node (agent/wal/launcher.sh): Node that fails
 * before gcwal's own handlers run (a damaged bundle) exits 1, or 0 having
 * done nothing, so the launcher must be able to tell gcwal's own "not in the
 * archive" from that.
 */
export const LAUNCHER_CHILD_ENV = 'GCWAL_LAUNCHER_CHILD';

/**
 * wal-fetch's "not in the archive" when LAUNCHER_CHILD_ENV is set: a status
 * neither gcwal's documented codes nor Node's own use, which the launcher
 * turns back into 1. Below 126, so that it would still read as "not in the
 * archive" if it ever reached PostgreSQL directly.
 */
export const NOT_FOUND_FOR_LAUNCHER = 125;
