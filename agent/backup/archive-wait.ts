/**
 * backup-push's archive check: a backup is restorable only once the WAL from
 * its start segment to its stop segment is in the repository. PostgreSQL's
 * own wait (pg_backup_stop with wait_for_archive) never ends while
 * archive_command fails, watches the archiver rather than this repository,
 * and on a standby does not wait at all. This one polls the repository and
 * gives up once none of the missing WAL has arrived for the archive timeout.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WalNotArchivedError } from '../../core/errors.ts';
import { WAL_PREFIX, walFileNameFromKey, walObjectKey } from '../../core/layout.ts';
import type { Storage } from '../../core/storage/types.ts';
import type { ArchiverStatus } from './pg-backup.ts';

/** First pause between two looks at the repository; it doubles up to POLL_MAX_MS. */
const POLL_FIRST_MS = 100;
const POLL_MAX_MS = 2000;

/**
 * The names of `wanted` (ascending segment names of one timeline) not in the
 * repository, in order. One listing from just before the first name, ended
 * after the last: a key cut short by its last character sorts before the
 * first name and after all but the 15 segments before it.
 */
export async function missingWal(storage: Storage, wanted: readonly string[], signal?: AbortSignal): Promise<string[]> {
  if (wanted.length === 0) return [];
  const missing = new Set(wanted);
  const last = wanted[wanted.length - 1];
  for await (const info of storage.list(WAL_PREFIX, { startAfter: walObjectKey(wanted[0]).slice(0, -1), signal })) {
    const name = walFileNameFromKey(info.key) ?? '';
    if (name.slice(0, 24) > last) break;
    missing.delete(name);
  }
  return wanted.filter((name) => missing.has(name));
}

export interface WaitForWalOptions {
  /** give up once none of the missing WAL has arrived for this long */
  timeoutMs: number;
  signal?: AbortSignal;
  /** called once, with what is missing, when there is anything to wait for */
  onWaiting?: (missing: readonly string[]) => void;
}

/**
 * Poll the repository until every name in `wanted` is there. Resolves with
 * the names still missing when none arrived for `timeoutMs` (the clock
 * restarts whenever one does, so a long backlog that drains is waited for),
 * or with [] once all are there. Rejects with an AbortError when the signal
 * aborts, and with the storage's error when a listing fails.
 */
export async function waitForWal(storage: Storage, wanted: readonly string[], options: WaitForWalOptions): Promise<string[]> {
  const { signal, timeoutMs } = options;
  let missing = await missingWal(storage, wanted, signal);
  if (missing.length > 0) options.onWaiting?.(missing);
  let deadline = Date.now() + timeoutMs;
  let delay = POLL_FIRST_MS;
  while (missing.length > 0) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(delay, left), undefined, { signal });
    const still = await missingWal(storage, missing, signal);
    if (still.length < missing.length) {
      deadline = Date.now() + timeoutMs;
      delay = POLL_FIRST_MS;
    } else {
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
    missing = still;
  }
  return missing;
}

/** What pg_stat_archiver says, in a few words for an error message. */
export function describeArchiver(status: ArchiverStatus | undefined): string {
  if (!status) return 'pg_stat_archiver could not be read';
  const at = (time: Date | null) => (time ? ` at ${time.toISOString()}` : '');
  const archived = status.lastArchivedWal ? `last archived ${status.lastArchivedWal}${at(status.lastArchivedTime)}` : 'nothing archived';
  if (status.failedCount === 0) return `pg_stat_archiver: no failures, ${archived}`;
  const failures = `${status.failedCount} failure${status.failedCount === 1 ? '' : 's'}`;
  return `pg_stat_archiver: last failed ${status.lastFailedWal ?? '(unknown)'}${at(status.lastFailedTime)} (${failures}), ${archived}`;
}

/**
 * What backup-push on a standby without GCWAL_PRIMARY_CONNINFO says while it
 * waits: the standby cannot switch segments, so the last one comes only when
 * the primary leaves it.
 */
export const STANDBY_WAIT_NOTE =
  'on a standby the last segment is archived only once the primary switches wal segments (archive_timeout there), or set GCWAL_PRIMARY_CONNINFO so that backup-push switches it';

/**
 * The error backup-push fails with when its WAL did not reach the repository
 * in time. `standby`: false on a primary, else whether backup-push could
 * reach the primary (GCWAL_PRIMARY_CONNINFO) to switch its segment.
 */
export function walNotArchivedError(what: {
  backup: string;
  missing: readonly string[];
  timeoutSeconds: number;
  archiver: ArchiverStatus | undefined;
  standby: false | { primaryConninfo: boolean };
}): WalNotArchivedError {
  const more = what.missing.length > 1 ? ` and ${what.missing.length - 1} later segment${what.missing.length > 2 ? 's' : ''}` : '';
  const message = `wal ${what.missing[0]}${more} that backup ${what.backup} needs is not in the repository: none of it arrived for ${what.timeoutSeconds} s; ${describeArchiver(what.archiver)}; no backup was recorded`;
  const slow = 'raise GCWAL_ARCHIVE_TIMEOUT if archiving is only slow';
  const hint = !what.standby
    ? `check archive_command, which must run gcwal wal-push into this repository, and the server log for why it fails; ${slow}`
    : what.standby.primaryConninfo
      ? `on a standby the primary (or the standby with archive_mode = always) archives this wal: check its archive_command and server log; ${slow}`
      : `on a standby the primary (or the standby with archive_mode = always) archives this wal, and the last segment only once the primary switches segments: set GCWAL_PRIMARY_CONNINFO so that backup-push switches it (or archive_timeout on the primary), and check archive_command and the server log there; ${slow}`;
  return new WalNotArchivedError(message, hint);
}

/** The error backup-push refuses a primary with archive_mode = off with, before the backup starts. */
export function archiveModeOffError(where: string): WalNotArchivedError {
  return new WalNotArchivedError(
    `archive_mode is off on the server at ${where}: the wal a backup needs would never reach the repository, so it could not be restored`,
    "set archive_mode = on and archive_command = 'gcwal wal-push %p' (a restart), or pass --no-archive-check if you keep the WAL by other means",
  );
}
