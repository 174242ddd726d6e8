/**
 * `backup-fetch --delta`: restore a backup into an existing data directory
 * of the same cluster (a stopped standby, a failed primary), rewriting only
 * what differs from the backup. The result is exactly what a restore into an
 * empty directory gives:
 *
 * - a file the manifest lists, with the same size and CRC32C, is kept as it
 *   is (same inode, same mtime; only its mode is set to the manifest's);
 * - a file that differs, when the manifest has its block checksums (files
 *   of 64 KiB and more, patch.ts), is patched in place: only the blocks
 *   whose CRC32C differ are written, from the part streamed as usual;
 * - every other file, directory or link the backup does not have is removed,
 *   links never followed: what a base backup leaves out (pg_wal's contents,
 *   with the prefetch spool; postmaster.pid and .opts; pg_replslot,
 *   pg_stat_tmp and the other excluded directories' contents; backup_label,
 *   recovery.signal, standby.signal; temporary and unlogged relation files)
 *   is not in the manifest, so it goes too;
 * - global/pg_control is removed first and written last, as every restore
 *   does, so PostgreSQL cannot start on a half-done delta;
 * - a part all of whose files are kept is not read at all.
 *
 * Refused before anything is written: a running server (postmaster.pid of a
 * live process, or a live prefetcher on its pg_wal), a directory of another
 * cluster (the system identifier in global/pg_control), a directory that is
 * not a data directory, and tablespaces (in the backup or the directory).
 * A directory holding a restore gcwal left unfinished (its marker) is
 * gcwal's own and is accepted without a control file.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import { ClusterMismatchError, ExitCode, GcwalError, UsageError } from '../../core/errors.ts';
import type { Logger } from '../log.ts';
import { isPrefetcher, PID_FILE } from '../wal/prefetch-control.ts';
import { SPOOL_DIR } from '../wal/spool-entry.ts';
import { INCOMPLETE_MARKER } from './destination.ts';
import { restoredMode } from './extract.ts';
import { type BlockPatch, compareFile } from './patch.ts';
import { planRangedPart, type RangedPart } from './ranges.ts';

const CONTROL_FILE = 'global/pg_control';

/** A server (or its prefetcher) runs on the directory a delta restore was asked to write. */
export class ClusterRunningError extends GcwalError {
  constructor(message: string) {
    super('cluster_running', message, 'stop PostgreSQL on it first (pg_ctl stop), then run backup-fetch --delta again', ExitCode.destinationNotEmpty);
  }
}

/** What inspectDeltaDestination found: a data directory of some cluster, or gcwal's own unfinished restore. */
export type DeltaDestination = { kind: 'cluster'; systemIdentifier: string } | { kind: 'unfinished' };

/**
 * Whether `pid` (from a pid file) is a live process: signal 0 reaches it, or
 * it exists under another user (EPERM).
 */
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPidFile(file: string): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number.parseInt(text.split('\n')[0] ?? '', 10);
}

/** The system identifier in a pg_control file: its first field, a little-endian uint64. */
export async function controlFileSystemIdentifier(file: string): Promise<string | undefined> {
  const fh = await fs.open(file, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return bytesRead === 8 ? buf.readBigUInt64LE(0).toString() : undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Check `dest` for a delta restore, touching nothing. Undefined when it is
 * absent or empty: then a delta restore is a plain one. Throws
 * ClusterRunningError for a live postmaster or prefetcher, UsageError for a
 * directory that is neither a data directory nor gcwal's unfinished restore,
 * or that has tablespaces.
 */
export async function inspectDeltaDestination(dest: string): Promise<DeltaDestination | undefined> {
  let entries: string[];
  try {
    entries = await fs.readdir(dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR')
      throw new UsageError(`destination ${dest} exists and is not a directory`, 'give --delta the data directory to bring back to the backup');
    throw err;
  }
  if (entries.length === 0) return undefined;
  const postmaster = await readPidFile(path.join(dest, 'postmaster.pid'));
  if (postmaster !== undefined && alive(postmaster))
    throw new ClusterRunningError(`a server is running on ${dest} (postmaster.pid names process ${postmaster})`);
  const prefetcher = await readPidFile(path.join(dest, 'pg_wal', SPOOL_DIR, PID_FILE));
  if (prefetcher !== undefined && isPrefetcher(prefetcher))
    throw new ClusterRunningError(`the WAL prefetcher of ${dest}'s last recovery still runs (process ${prefetcher}); it stops within a second of its server`);
  const tablespaces = await fs.readdir(path.join(dest, 'pg_tblspc')).catch(() => [] as string[]);
  if (tablespaces.length > 0)
    throw new UsageError(
      `${dest} has tablespaces (pg_tblspc/${tablespaces[0]}); --delta restores only clusters without tablespaces`,
      'restore into an empty directory without --delta',
    );
  const systemIdentifier = await controlFileSystemIdentifier(path.join(dest, CONTROL_FILE));
  if (systemIdentifier !== undefined) return { kind: 'cluster', systemIdentifier };
  if (entries.includes(INCOMPLETE_MARKER)) return { kind: 'unfinished' };
  throw new UsageError(
    `${dest} is not a PostgreSQL data directory (no ${CONTROL_FILE})`,
    "give --delta a data directory of the backup's cluster, or restore into an empty directory without --delta",
  );
}

/** Refuse a backup that cannot go into the directory inspectDeltaDestination found. */
export function checkDeltaBackup(found: DeltaDestination, meta: BackupMeta, dest: string): void {
  if (found.kind === 'cluster' && found.systemIdentifier !== meta.systemIdentifier) {
    throw new ClusterMismatchError(
      `${dest} belongs to cluster ${found.systemIdentifier}, backup ${meta.name} to cluster ${meta.systemIdentifier}`,
      'a delta restore only brings a data directory of the same cluster back to its backup; restore into an empty directory instead',
    );
  }
  if ((meta.tablespaces ?? []).length > 0)
    throw new UsageError(
      `backup ${meta.name} has tablespaces; --delta restores only clusters without tablespaces`,
      'restore into an empty directory without --delta',
    );
}

/** What prepareDelta left in place. */
export interface DeltaPlan {
  /** backup paths of files kept as they are: not written again */
  kept: Set<string>;
  /** backup paths of files kept in place with only some blocks to write (patch.ts) */
  patch: Map<string, BlockPatch>;
  /** parts all of whose files are kept: not read */
  skipParts: Set<number>;
  /** parts of which only the files to write are read (ranges.ts), by index */
  ranged: Map<number, RangedPart>;
  keptBytes: number;
  removed: number;
}

/** Run `fn` over `items`, `concurrency` at a time. */
async function eachLimited<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, lane));
}

/**
 * Bring `dest` to the point where the parts only need to write what
 * differs: remove global/pg_control, everything the manifest does not list
 * (or lists as another type), and files whose size or CRC32C differ, unless
 * the manifest has their block checksums and some blocks still match (those
 * stay, to be patched block by block); keep the rest with the manifest's
 * mode. Call after the incomplete marker is written (it is kept). Files are
 * compared `concurrency` at a time.
 */
export async function prepareDelta(
  dest: string,
  meta: BackupMeta,
  manifest: ReadonlyMap<string, ManifestEntry>,
  options: { concurrency: number; log: Logger; signal?: AbortSignal },
): Promise<DeltaPlan> {
  const plan: DeltaPlan = { kept: new Set(), patch: new Map(), skipParts: new Set(), ranged: new Map(), keptBytes: 0, removed: 0 };
  await fs.rm(path.join(dest, CONTROL_FILE), { force: true });
  const candidates: { relative: string; absolute: string; entry: ManifestEntry; size: number; mode: number }[] = [];
  const remove = async (absolute: string) => {
    await fs.rm(absolute, { recursive: true, force: true });
    plan.removed++;
  };
  const walk = async (relDir: string, absDir: string): Promise<void> => {
    options.signal?.throwIfAborted();
    for (const dirent of await fs.readdir(absDir, { withFileTypes: true })) {
      const relative = relDir === '' ? dirent.name : `${relDir}/${dirent.name}`;
      const absolute = path.join(absDir, dirent.name);
      if (relative === INCOMPLETE_MARKER) continue;
      const entry = manifest.get(relative);
      if (entry?.type === 'directory' && dirent.isDirectory()) {
        await walk(relative, absolute);
      } else if (entry?.type === 'file' && dirent.isFile()) {
        const st = await fs.lstat(absolute);
        // A file with block checksums may be patched even when its size changed (a relation grew or shrank).
        if (st.size === entry.size || entry.blocks !== undefined) candidates.push({ relative, absolute, entry, size: st.size, mode: st.mode & 0o7777 });
        else await remove(absolute);
      } else {
        // Not in the backup, or not as this type (a link is never followed).
        await remove(absolute);
      }
    }
  };
  await walk('', dest);
  let blocks = 0;
  let patchedBlocks = 0;
  await eachLimited(candidates, options.concurrency, async (c) => {
    options.signal?.throwIfAborted();
    const found = await compareFile(c.absolute, c.size, c.entry);
    if (found.kind === 'rewrite') {
      await remove(c.absolute);
      return;
    }
    if (found.kind === 'same') {
      plan.kept.add(c.relative);
      plan.keptBytes += c.size;
    } else {
      plan.patch.set(c.relative, found.patch);
      blocks += found.patch.differing.length;
      patchedBlocks += found.patch.count;
    }
    const mode = restoredMode(c.entry.mode);
    if (c.mode !== mode) await fs.chmod(c.absolute, mode);
  });
  // A part none of whose files is to be written need not be read; one with few, only in part (ranges.ts).
  const files = meta.parts.map(() => ({ all: [] as ManifestEntry[], write: [] as ManifestEntry[] }));
  for (const entry of manifest.values()) {
    if (entry.type !== 'file' || entry.part === undefined) continue;
    files[entry.part].all.push(entry);
    if (!plan.kept.has(entry.path)) files[entry.part].write.push(entry);
  }
  meta.parts.forEach((part, i) => {
    if (files[i].write.length === 0) plan.skipParts.add(i);
    else {
      const ranged = planRangedPart(part, files[i].write, files[i].all);
      if (ranged) plan.ranged.set(i, ranged);
    }
  });
  const patched = plan.patch.size > 0 ? `, ${plan.patch.size} patched in place (${patchedBlocks} of their ${blocks} blocks to write)` : '';
  const ranged = plan.ranged.size > 0 ? `, ${plan.ranged.size} read only in the ranges of the files to write` : '';
  options.log.info(
    `delta restore: ${plan.kept.size} files (${plan.keptBytes} bytes) unchanged and kept${patched}, ${plan.removed} removed or to be rewritten; ${plan.skipParts.size} of ${meta.parts.length} parts need not be read${ranged}`,
  );
  return plan;
}
