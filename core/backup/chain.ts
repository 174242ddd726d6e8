/**
 * Chains of incremental backups: a full backup and the incrementals taken
 * after it, each naming its parent (meta.ts, format 2). Which backup may be
 * the parent of a new one, the chain a restore rebuilds, and which backup of
 * the chain holds each file's bytes. Pure but for resolveChain, which reads
 * backup.json of each ancestor.
 */
import { CorruptObjectError, ExitCode, GcwalError, NotFoundError } from '../errors.ts';
import type { Storage } from '../storage/types.ts';
import { type TimelineHistoryEntry, timelineOfLsn } from '../wal/history.ts';
import { parseLsn } from '../wal/lsn.ts';
import { resolveBackup } from './list.ts';
import type { BackupMeta, ManifestEntry } from './meta.ts';

/** Longest chain followed: a damaged or planted backup.json must not make a restore loop. */
export const MAX_CHAIN = 1000;

const CHAIN_HINT = 'the chain of incremental backups is broken; restore an older backup whose chain is whole (gcwal backup-list), and take a full backup';

/** `backup-push --incremental` found no backup to be the parent of the new one. */
export class NoParentBackupError extends GcwalError {
  constructor(message: string, hint = 'take a full backup first: gcwal backup-push without --incremental') {
    super('no_parent_backup', message, hint, ExitCode.usage);
  }
}

/** PostgreSQL's major version from server_version_num (150010 → 15). */
export function majorOf(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

/** The cluster a new incremental backup is taken of, at its start. */
export interface ChainStart {
  systemIdentifier: string;
  pgVersionNum: number;
  walSegmentSize: number;
  timeline: number;
  startLsn: bigint;
}

/**
 * The parent for an incremental backup starting at `start`: the newest of
 * `backups` (oldest first, as listBackups returns them) of the same cluster,
 * major version and segment size that stopped at or before the start on the
 * start's own timeline lineage. A backup of another timeline qualifies only
 * when `history` (the history of `start.timeline`) says its stop lies on that
 * timeline before it branched off; without a history only backups of the
 * same timeline do. Throws NoParentBackupError naming why none does.
 */
export function chooseParent(backups: readonly BackupMeta[], start: ChainStart, history?: readonly TimelineHistoryEntry[]): BackupMeta {
  let sameCluster = 0;
  for (let i = backups.length - 1; i >= 0; i--) {
    const b = backups[i];
    if (b.systemIdentifier !== start.systemIdentifier) continue;
    sameCluster++;
    if (majorOf(b.pgVersionNum) !== majorOf(start.pgVersionNum) || b.walSegmentSize !== start.walSegmentSize) continue;
    const stop = parseLsn(b.stopLsn);
    if (stop > start.startLsn) continue;
    const onLineage = b.timeline === start.timeline || (history !== undefined && timelineOfLsn(history, start.timeline, stop) === b.timeline);
    if (onLineage) return b;
  }
  throw new NoParentBackupError(
    sameCluster === 0
      ? `no backup of cluster ${start.systemIdentifier} in the repository to be the parent of an incremental backup`
      : `none of the ${sameCluster} backups of cluster ${start.systemIdentifier} can be the parent of an incremental backup on timeline ${start.timeline}: each is of another major version or segment size, stops after this backup starts, or lies on a timeline this one did not branch from`,
  );
}

/**
 * Check that `parent` can be the parent of `child` in a chain: same cluster,
 * segment size and major version, stopped by the child's start, and the same
 * full backup. Throws CorruptObjectError naming both.
 */
export function checkParent(child: BackupMeta, parent: BackupMeta): void {
  const bad = (why: string) => new CorruptObjectError(`backup ${parent.name}, the parent of ${child.name}, ${why}`, CHAIN_HINT);
  if (parent.systemIdentifier !== child.systemIdentifier) throw bad(`is of cluster ${parent.systemIdentifier}, not ${child.systemIdentifier}`);
  if (parent.walSegmentSize !== child.walSegmentSize) throw bad(`has ${parent.walSegmentSize}-byte wal segments, not ${child.walSegmentSize}`);
  if (majorOf(parent.pgVersionNum) !== majorOf(child.pgVersionNum)) throw bad(`is of postgresql ${parent.pgVersion}, not ${child.pgVersion}`);
  if (parseLsn(parent.stopLsn) > parseLsn(child.startLsn)) throw bad(`stops at ${parent.stopLsn}, after ${child.name} starts at ${child.startLsn}`);
  const full = parent.full ?? parent.name;
  if (full !== child.full) throw bad(`belongs to the chain of ${full}, but ${child.name} names ${child.full}`);
}

/**
 * The chain of `meta`, oldest (its full backup) first and `meta` last; a
 * full backup's chain is itself. Throws CorruptObjectError naming the backup
 * when an ancestor is missing from the repository, its backup.json is
 * damaged, it does not fit its child (checkParent), or the chain is longer
 * than MAX_CHAIN.
 */
export async function resolveChain(storage: Storage, meta: BackupMeta, signal?: AbortSignal): Promise<BackupMeta[]> {
  const chain = [meta];
  for (let child = meta; child.parent !== undefined; child = chain[0]) {
    if (chain.length >= MAX_CHAIN) throw new CorruptObjectError(`the chain of backup ${meta.name} is longer than ${MAX_CHAIN} backups`, CHAIN_HINT);
    const name = child.parent;
    let parent: BackupMeta;
    try {
      parent = await resolveBackup(storage, name, signal);
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new CorruptObjectError(`backup ${name}, the parent of ${child.name} in the chain of ${meta.name}, is missing from the repository`, CHAIN_HINT, {
          cause: err,
        });
      if (err instanceof CorruptObjectError)
        throw new CorruptObjectError(`backup ${name}, the parent of ${child.name} in the chain of ${meta.name}, is damaged: ${err.message}`, CHAIN_HINT, {
          cause: err,
        });
      throw err;
    }
    // A parent stops by its child's start, so the chain cannot go round.
    checkParent(child, parent);
    chain.unshift(parent);
  }
  return chain;
}

/**
 * Which paths each older backup of a chain supplies to a restore of its last
 * backup: every file of `last` (the last backup's manifest) that names a
 * backup in `ref`, by that backup's name. `older` holds the manifests of the
 * other backups of the chain. Throws CorruptObjectError when a file refers to
 * a backup outside the chain, or the backup referred to does not store the
 * file (no such path, a reference again, or another size or CRC32C).
 */
export function chainSources(
  lastName: string,
  last: ReadonlyMap<string, ManifestEntry>,
  older: ReadonlyMap<string, ReadonlyMap<string, ManifestEntry>>,
): Map<string, Set<string>> {
  const sources = new Map<string, Set<string>>([...older.keys()].map((name) => [name, new Set<string>()]));
  for (const entry of last.values()) {
    if (entry.ref === undefined) continue;
    const bad = (why: string) => new CorruptObjectError(`file ${entry.path} of backup ${lastName} is stored in backup ${entry.ref}, ${why}`, CHAIN_HINT);
    const holder = older.get(entry.ref);
    if (!holder) throw bad('which is not in its chain');
    const stored = holder.get(entry.path);
    if (stored?.type !== 'file' || stored.part === undefined) throw bad('whose manifest does not store it');
    if (stored.size !== entry.size || stored.crc32c !== entry.crc32c)
      throw bad(`whose manifest records ${stored.size} bytes with crc32c ${stored.crc32c}, not ${entry.size} bytes with ${entry.crc32c}`);
    sources.get(entry.ref)!.add(entry.path);
  }
  return sources;
}
