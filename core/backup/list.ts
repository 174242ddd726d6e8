import { CorruptObjectError, type GcwalError, NotFoundError } from '../errors.ts';
import { BACKUP_PREFIX, backupMetaKey, backupNameFromKey, isBackupName } from '../layout.ts';
import { readSmallObject } from '../storage/objects.ts';
import type { Storage } from '../storage/types.ts';
import { parseLsn } from '../wal/lsn.ts';
import { parseBackupMeta, type BackupMeta } from './meta.ts';

/** The name that resolveBackup takes to mean the newest backup. */
export const LATEST = 'LATEST';

/** Largest backup.json accepted (a multi-terabyte backup's list of parts fits easily). */
const META_LIMIT = 16 * 1024 * 1024;

/** backup.json files read at once while listing (latency-bound on gs://). */
const READ_CONCURRENCY = 8;

export interface ListBackupsOptions {
  /**
   * Called for a backup.json that cannot be read as metadata; the backup is
   * then left out. Without it, listBackups throws the CorruptObjectError.
   */
  onInvalid?: (name: string, err: GcwalError) => void;
}

/**
 * Order backups oldest first: by start time, then start LSN, then name.
 * Time first, because after a point-in-time recovery a newer timeline can
 * start at a lower LSN than an older backup on the abandoned timeline.
 */
export function compareBackups(a: BackupMeta, b: BackupMeta): number {
  if (a.startTime !== b.startTime) return a.startTime < b.startTime ? -1 : 1;
  const la = parseLsn(a.startLsn);
  const lb = parseLsn(b.startLsn);
  if (la !== lb) return la < lb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** backup.json of backup `name`, parsed strictly (parseBackupMeta). */
async function readMeta(storage: Storage, name: string, signal?: AbortSignal): Promise<BackupMeta> {
  const key = backupMetaKey(name);
  const body = await readSmallObject(storage, key, { signal, limit: META_LIMIT });
  return parseBackupMeta(body.toString('utf8'), key);
}

/**
 * Every complete backup in the repository: each `backups/<name>/backup.json`
 * read and checked, oldest first (compareBackups). A folder without
 * backup.json (a backup still running, or one that failed) is invisible.
 * Throws CorruptObjectError for a malformed backup.json unless
 * `options.onInvalid` takes it; storage failures always throw.
 */
export async function listBackups(storage: Storage, signal?: AbortSignal, options: ListBackupsOptions = {}): Promise<BackupMeta[]> {
  const names: string[] = [];
  for await (const info of storage.list(BACKUP_PREFIX, { signal })) {
    const name = backupNameFromKey(info.key);
    if (name !== undefined && info.key === backupMetaKey(name)) names.push(name);
  }
  const metas: (BackupMeta | undefined)[] = new Array(names.length);
  let next = 0;
  const lane = async () => {
    while (next < names.length) {
      const i = next++;
      try {
        metas[i] = await readMeta(storage, names[i], signal);
      } catch (err) {
        // Deleted between list and read (retention running): just gone.
        if (err instanceof NotFoundError) continue;
        if (err instanceof CorruptObjectError && options.onInvalid) {
          options.onInvalid(names[i], err);
          continue;
        }
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, names.length) }, lane));
  return metas.filter((m): m is BackupMeta => m !== undefined).sort(compareBackups);
}

/**
 * The backup called `nameOrLatest`, or with `LATEST` (any case) the newest
 * complete one (last in listBackups' order). Throws NotFoundError (code
 * `not_found`) with a hint to run backup-list when there is no such backup
 * or, for LATEST, no backup at all; CorruptObjectError when its backup.json
 * is damaged.
 */
export async function resolveBackup(storage: Storage, nameOrLatest: string, signal?: AbortSignal): Promise<BackupMeta> {
  if (nameOrLatest.toUpperCase() === LATEST) {
    const all = await listBackups(storage, signal);
    const latest = all.at(-1);
    if (!latest) throw new NotFoundError(`no backups in ${storage.url}`, 'run gcwal backup-push to take one');
    return latest;
  }
  const unknown = () => new NotFoundError(`backup ${nameOrLatest} not found in ${storage.url}`, 'run gcwal backup-list to see the backups, or pass LATEST');
  if (!isBackupName(nameOrLatest)) throw unknown();
  try {
    return await readMeta(storage, nameOrLatest, signal);
  } catch (err) {
    if (err instanceof NotFoundError) throw unknown();
    throw err;
  }
}

/** The fields `backup-list --json` prints for each backup: a stable, documented subset of BackupMeta. */
export interface BackupSummary {
  name: string;
  startTime: string;
  stopTime: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  startWalSegment: string;
  stopWalSegment: string;
  rawSize: number;
  storedSize: number;
  fileCount: number;
  pgVersion: string;
  systemIdentifier: string;
  /** an incremental backup's parent and its chain's full backup (absent for a full backup) */
  parent?: string;
  full?: string;
}

/** Project metadata onto the summary fields, in a fixed key order. */
export function backupSummary(meta: BackupMeta): BackupSummary {
  return {
    name: meta.name,
    startTime: meta.startTime,
    stopTime: meta.stopTime,
    timeline: meta.timeline,
    startLsn: meta.startLsn,
    stopLsn: meta.stopLsn,
    startWalSegment: meta.startWalSegment,
    stopWalSegment: meta.stopWalSegment,
    rawSize: meta.rawSize,
    storedSize: meta.storedSize,
    fileCount: meta.fileCount,
    pgVersion: meta.pgVersion,
    systemIdentifier: meta.systemIdentifier,
    ...(meta.parent !== undefined ? { parent: meta.parent, full: meta.full } : {}),
  };
}
