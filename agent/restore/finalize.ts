/**
 * The last steps of a restore, run only once every part is verified: the
 * directory tree completed (empty directories, modes, tablespace links,
 * pg_wal), backup_label and tablespace_map, recovery settings, everything
 * fsynced, and finally the held-back control file put in place and the
 * incomplete marker removed.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import { INCOMPLETE_MARKER } from './destination.ts';
import { type DirectorySet, syncDirectory, writeFileDurably } from './disk.ts';
import { HELD_BACK, HELD_BACK_SUFFIX, restoredMode } from './extract.ts';
import { placeBackupPath } from './paths.ts';
import { writeRecoverySetup } from './recovery.ts';
import { formatTablespaceMap, type TablespaceTarget } from './tablespaces.ts';

/** Everything finalizeRestore needs. */
export interface FinalizeInput {
  meta: BackupMeta;
  dest: string;
  tablespaces: readonly TablespaceTarget[];
  manifest: ReadonlyMap<string, ManifestEntry>;
  /** backup paths found in the parts */
  seen: ReadonlySet<string>;
  dirs: DirectorySet;
  /** postgresql.auto.conf block, when recovery was asked for */
  recoveryBlock: string | undefined;
}

/**
 * Throw CorruptObjectError naming the first file the manifest lists but no
 * part held. Directories and tablespace links need not be in a part: restore
 * creates them from the manifest and the metadata (backup-push keeps the
 * links in the manifest only).
 */
export function checkNothingMissing(manifest: ReadonlyMap<string, ManifestEntry>, seen: ReadonlySet<string>, backupName: string): void {
  const missing = [...manifest.values()].filter((e) => e.type === 'file' && !seen.has(e.path));
  if (missing.length === 0) return;
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
  throw new CorruptObjectError(
    `${missing[0].type} ${missing[0].path} of backup ${backupName} is in the manifest but in none of its parts${more}`,
    'the backup is damaged; restore another backup',
  );
}

/**
 * Complete a restore whose parts are all verified. The order matters:
 * backup_label and recovery.signal appear only now, and global/pg_control
 * last of all, so PostgreSQL cannot start from an unfinished directory.
 */
export async function finalizeRestore(input: FinalizeInput): Promise<void> {
  const { meta, dest, dirs } = input;
  checkNothingMissing(input.manifest, input.seen, meta.name);
  const tablespaceDirs = new Map(input.tablespaces.map((t) => [t.oid, t.target]));

  // Directories the parts did not create (excluded contents leave them empty), then modes.
  const modes: [string, number][] = [];
  for (const entry of input.manifest.values()) {
    if (entry.type !== 'directory') continue;
    const place = placeBackupPath(entry.path, dest, tablespaceDirs, `manifest of backup ${meta.name}`);
    if (place.tablespaceLink) continue;
    await dirs.ensure(place.absolute);
    modes.push([place.absolute, restoredMode(entry.mode)]);
  }
  await dirs.ensure(path.join(dest, 'pg_wal', 'archive_status'));
  await dirs.ensure(path.join(dest, 'pg_tblspc'));
  for (const t of input.tablespaces) await fs.symlink(t.target, path.join(dest, 'pg_tblspc', t.oid));
  // Deepest first, so a read-only parent never blocks its children.
  modes.sort((a, b) => b[0].length - a[0].length);
  for (const [dir, mode] of modes) await fs.chmod(dir, mode);

  // PostgreSQL re-creates the pg_tblspc links from tablespace_map at start,
  // so the map must name the directories chosen here, not the originals.
  if (input.tablespaces.length > 0 || (meta.tablespaceMap ?? '') !== '') {
    await writeFileDurably(path.join(dest, 'tablespace_map'), formatTablespaceMap(input.tablespaces));
  }
  await writeFileDurably(path.join(dest, 'backup_label'), meta.backupLabel);
  if (input.recoveryBlock !== undefined) await writeRecoverySetup(dest, input.recoveryBlock);

  await dirs.syncAll();
  for (const relative of HELD_BACK) {
    if (!input.seen.has(relative)) continue;
    const final = path.join(dest, ...relative.split('/'));
    await fs.rename(final + HELD_BACK_SUFFIX, final);
    await syncDirectory(path.dirname(final));
  }
  await fs.unlink(path.join(dest, INCOMPLETE_MARKER));
  await syncDirectory(dest);
}
