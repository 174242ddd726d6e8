/**
 * Which backup a point-in-time restore starts from. Recovery can only stop
 * after the backup it starts from is consistent (its stop point): a target
 * before that makes PostgreSQL fail late ("requested recovery stop point is
 * before consistent recovery point"), after the whole restore. So a time or
 * LSN target is checked here, before anything is written: LATEST picks the
 * newest backup that ended at or before the target, a named backup must have
 * ended at or before it, and a target before every backup is refused with
 * the earliest restorable point.
 */
import { LATEST, listBackups, resolveBackup } from '../backup/list.ts';
import type { BackupMeta } from '../backup/meta.ts';
import { ClusterMismatchError, NotFoundError, UsageError } from '../errors.ts';
import { requireRepositoryIdentity } from '../repository.ts';
import type { Storage } from '../storage/types.ts';
import { parseLsn } from '../wal/lsn.ts';
import type { RecoveryTarget } from './recovery-config.ts';

/** A time or LSN target, the only kinds a backup's stop can be compared with. */
type ComparableTarget = Extract<RecoveryTarget, { kind: 'time' } | { kind: 'lsn' }>;

const NORMALISED_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-])(\d{2}):(\d{2})$/;

/**
 * Microseconds since the epoch of a target time as normalizeTargetTime
 * writes it (`YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`); recovery_target_time has
 * microsecond precision, more than a Date.
 */
export function targetTimeMicros(time: string): bigint {
  const m = NORMALISED_TIME.exec(time);
  if (!m) throw new UsageError(`invalid recovery target time "${time}"`, 'write it as YYYY-MM-DD HH:MM:SS+HH:MM');
  const [, y, mo, d, h, mi, s, frac = '', sign, zh, zm] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const offsetMinutes = (Number(zh) * 60 + Number(zm)) * (sign === '-' ? -1 : 1);
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + BigInt(frac.padEnd(6, '0'));
}

/** Microseconds since the epoch of an ISO time (a backup's stopTime). */
function isoMicros(iso: string): bigint | undefined {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : BigInt(ms) * 1000n;
}

function comparable(target: RecoveryTarget | undefined): ComparableTarget | undefined {
  return target?.kind === 'time' || target?.kind === 'lsn' ? target : undefined;
}

/** Where `backup` becomes consistent, in the target's terms (microseconds or LSN); undefined when unreadable. */
function stopKey(backup: BackupMeta, kind: ComparableTarget['kind']): bigint | undefined {
  if (kind === 'time') return isoMicros(backup.stopTime);
  try {
    return parseLsn(backup.stopLsn);
  } catch {
    return undefined;
  }
}

/** Whether `backup` is consistent at or before `target`; an unreadable stop counts as not. */
function endsBy(backup: BackupMeta, target: ComparableTarget): boolean {
  const stop = stopKey(backup, target.kind);
  return stop !== undefined && stop <= (target.kind === 'time' ? targetTimeMicros(target.time) : parseLsn(target.lsn));
}

/** `2024-05-01T12:00:30.456Z` → `2024-05-01 12:00:30.456+00`, as recovery_target_time accepts it. */
function asTargetTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '+00');
}

function describe(target: ComparableTarget): string {
  return target.kind === 'time' ? `recovery target time ${target.time}` : `recovery target lsn ${target.lsn}`;
}

/** The earliest point `backup` can be restored to, in the target's terms. */
function stopOf(backup: BackupMeta, target: ComparableTarget): string {
  return target.kind === 'time' ? asTargetTime(backup.stopTime) : backup.stopLsn;
}

/**
 * The backup to restore for `target` among `backups` (oldest first, as
 * listBackups returns them): the newest one that ended at or before a time
 * or LSN target, else the newest. Throws UsageError, naming the earliest
 * restorable point, when the target is before every backup's end.
 * `backups` must not be empty.
 */
export function chooseBackupForTarget(backups: readonly BackupMeta[], target: RecoveryTarget | undefined, where: string): BackupMeta {
  const t = comparable(target);
  if (!t) return backups[backups.length - 1];
  for (let i = backups.length - 1; i >= 0; i--) if (endsBy(backups[i], t)) return backups[i];
  let earliest = backups[0];
  for (const b of backups) {
    const key = stopKey(b, t.kind);
    const best = stopKey(earliest, t.kind);
    if (key !== undefined && (best === undefined || key < best)) earliest = b;
  }
  const point = stopOf(earliest, t);
  throw new UsageError(
    `${describe(t)} is before the earliest restorable point ${point} (the end of backup ${earliest.name}, the oldest in ${where})`,
    `choose a target at or after ${point}; gcwal status shows the recoverable window`,
  );
}

/**
 * Throw UsageError when a time or LSN `target` is before the end of
 * `backup`: PostgreSQL cannot stop recovery before the backup is consistent.
 */
export function checkTargetAfterBackup(backup: BackupMeta, target: RecoveryTarget | undefined): void {
  const t = comparable(target);
  if (!t || endsBy(backup, t)) return;
  const point = stopOf(backup, t);
  throw new UsageError(
    `${describe(t)} is before the end of backup ${backup.name} (${point}), the earliest point it can restore to`,
    `choose a target at or after ${point}, or an older backup from gcwal backup-list, or LATEST to pick one`,
  );
}

/** The backup chosen for a restore, and what was passed over to choose it. */
export interface ResolvedBackup {
  meta: BackupMeta;
  /** with LATEST and a time or LSN target: backups of the cluster newer than the target */
  newerSkipped: number;
  /** with LATEST: backups in the repository of another cluster than gcwal.json's, never chosen */
  otherClusters: string[];
}

/**
 * Resolve `nameOrLatest` for a restore to `target`, among the backups of the
 * repository's own cluster only (the system identifier in gcwal.json): a
 * backup of another cluster planted in the repository is never LATEST and
 * never chosen for a target. LATEST is the newest backup that ended by a
 * time or LSN target (chooseBackupForTarget), or the newest without one; a
 * name must name a backup of this cluster that ended by the target.
 * Throws RepositoryMissingError without gcwal.json, NotFoundError as
 * resolveBackup does (LATEST: no backup of this cluster),
 * ClusterMismatchError for a named backup of another cluster, UsageError for
 * a target before the backup or before every backup, CorruptObjectError for
 * damaged metadata.
 */
export async function resolveBackupForTarget(
  storage: Storage,
  nameOrLatest: string,
  target: RecoveryTarget | undefined,
  signal?: AbortSignal,
): Promise<ResolvedBackup> {
  const identity = await requireRepositoryIdentity(storage, { signal });
  if (nameOrLatest.toUpperCase() !== LATEST) {
    const meta = await resolveBackup(storage, nameOrLatest, signal);
    if (meta.systemIdentifier !== identity.systemIdentifier) {
      throw new ClusterMismatchError(
        `backup ${meta.name} is of cluster ${meta.systemIdentifier}, not of cluster ${identity.systemIdentifier} that repository ${storage.url} belongs to`,
        "restore a backup of this repository's cluster (gcwal backup-list); a backup of another cluster here was put there by something other than this cluster's backup-push",
      );
    }
    checkTargetAfterBackup(meta, target);
    return { meta, newerSkipped: 0, otherClusters: [] };
  }
  const all = await listBackups(storage, signal);
  const own = all.filter((b) => b.systemIdentifier === identity.systemIdentifier);
  const otherClusters = all.filter((b) => b.systemIdentifier !== identity.systemIdentifier).map((b) => b.name);
  if (own.length === 0) {
    const message =
      otherClusters.length > 0
        ? `no backups of cluster ${identity.systemIdentifier} in ${storage.url} (${otherClusters.length} of other clusters ignored)`
        : `no backups in ${storage.url}`;
    throw new NotFoundError(message, 'run gcwal backup-push to take one');
  }
  const meta = chooseBackupForTarget(own, target, storage.url);
  return { meta, newerSkipped: own.length - 1 - own.indexOf(meta), otherClusters };
}
