/**
 * backup-push --incremental, file level (pgBackRest's classic incremental,
 * any supported PostgreSQL version): a file whose size and modification
 * time are those the parent recorded is not read again, the new manifest
 * names the backup holding its bytes instead; every other file is stored
 * whole. WAL replay from the new backup's start repairs whatever changes
 * after it, as with any base backup.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { chooseParent, type ChainStart } from '../../core/backup/chain.ts';
import { listBackups } from '../../core/backup/list.ts';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import type { Storage } from '../../core/storage/types.ts';
import { parseHistoryFile, type TimelineHistoryEntry } from '../../core/wal/history.ts';
import type { Logger } from '../log.ts';
import { readManifest } from '../restore/manifest.ts';
import { CONTROL_FILE, WAL_DIR } from './exclude.ts';
import type { WalkEntry } from './walk.ts';

/** The parent of a new incremental backup, with what the new one needs of it. */
export interface ParentBackup {
  meta: BackupMeta;
  /** the full backup the chain starts from */
  full: string;
  /** its manifest, block checksums included (carried over to referenced files for a delta restore) */
  manifest: Map<string, ManifestEntry>;
}

/**
 * The history of `timeline` from the server's own pg_wal (PostgreSQL keeps
 * history files there), or undefined on timeline 1 or when it is not there:
 * then only backups of the same timeline can be parents.
 */
async function serverHistory(pgdata: string, timeline: number): Promise<TimelineHistoryEntry[] | undefined> {
  if (timeline === 1) return undefined;
  const file = path.join(pgdata, WAL_DIR, `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseHistoryFile(text, timeline);
}

/**
 * Choose the parent of a backup starting at `start` (core/backup/chain.ts
 * chooseParent, among the repository's readable backups; damaged ones are
 * skipped with a warning) and read its manifest. Throws NoParentBackupError
 * when no backup qualifies, CorruptObjectError when the parent's manifest is
 * damaged.
 */
export async function findParent(storage: Storage, pgdata: string, start: ChainStart, log: Logger, signal?: AbortSignal): Promise<ParentBackup> {
  const backups = await listBackups(storage, signal, {
    onInvalid: (name, err) => log.warn(`backup ${name} is damaged, not a parent for an incremental backup: ${err.message}`),
  });
  const meta = chooseParent(backups, start, await serverHistory(pgdata, start.timeline));
  const manifest = await readManifest(storage, meta, signal, { blocks: true });
  return { meta, full: meta.full ?? meta.name, manifest };
}

/**
 * Whether the file `entry` (as walked now) can be taken from the parent:
 * a regular file the parent recorded with the same size and modification
 * time, that time a whole second before the parent started (a file written
 * in the second the parent started, or during it, may have changed after
 * it was read without its time changing: pgBackRest copies those again
 * too). The control file is always copied: restore writes it last.
 */
export function unchangedSinceParent(entry: WalkEntry, stored: ManifestEntry | undefined, parentStartMs: number): boolean {
  if (entry.type !== 'file' || entry.path === CONTROL_FILE || !stored || stored.type !== 'file') return false;
  const mtime = entry.mtime.getTime();
  return stored.size === entry.size && Date.parse(stored.mtime) === mtime && Math.floor(mtime / 1000) < Math.floor(parentStartMs / 1000);
}

/**
 * Split the walk into what the new backup stores (directories and changed
 * files, in walk order) and the manifest entries of unchanged files, which
 * name the backup holding their bytes (the parent, or the backup the parent
 * refers to) with that backup's size and CRC32C. Pure.
 */
export function splitByParent(entries: readonly WalkEntry[], parent: ParentBackup): { copy: WalkEntry[]; referenced: ManifestEntry[] } {
  const startMs = Date.parse(parent.meta.startTime);
  const copy: WalkEntry[] = [];
  const referenced: ManifestEntry[] = [];
  for (const entry of entries) {
    const stored = parent.manifest.get(entry.path);
    if (!stored || !unchangedSinceParent(entry, stored, startMs)) {
      copy.push(entry);
      continue;
    }
    const line: ManifestEntry = {
      path: entry.path,
      type: 'file',
      size: stored.size,
      crc32c: stored.crc32c,
      ref: stored.ref ?? parent.meta.name,
      mode: entry.mode,
      mtime: stored.mtime,
    };
    if (stored.blockSize !== undefined) Object.assign(line, { blockSize: stored.blockSize, blocks: stored.blocks });
    referenced.push(line);
  }
  return { copy, referenced };
}
