import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { crc32c } from '../../checksum/crc32c.ts';
import { fsyncPath } from '../../fsync.ts';
import { mapFsError, isErrno } from './errors.ts';
import { FILE_MODE } from './dirs.ts';

/**
 * The file driver's metadata sidecars (`.gcwal/meta/<key>.json`) and their
 * pending copies.
 *
 * A write puts the sidecar, fsynced, at a pending name in `.gcwal/tmp`
 * derived from the key and the data file's inode (pendingSidecarName) and
 * fsyncs that directory BEFORE the data is linked or renamed to its key.
 * So from the moment data appears under a key until its sidecar is renamed
 * into place, whoever finds the data without a matching sidecar can find
 * the pending one from what it sees (key, inode) and finish the rename: a
 * writer killed between the two steps leaves nothing stuck.
 */
export interface Sidecar {
  size: number;
  crc32c: string;
  metadata: Record<string, string>;
  created: string;
  /** decimal; absent in sidecars written before generations existed */
  generation?: string;
  /** inode of the data file this sidecar was written for (decimal); absent likewise */
  ino?: string;
  /** the object's key; absent in sidecars written before pending sidecars existed */
  key?: string;
}

/** File name (in `.gcwal/tmp`) of the pending sidecar of `key`'s data file with inode `ino`. */
export function pendingSidecarName(key: string, ino: bigint | string): string {
  // An inode names one live file; the key's CRC32C (no crypto module on
  // wal-push's start-up path) keeps two keys' names apart after inode reuse.
  return `pending-${ino}-${crc32c(Buffer.from(key, 'utf8')).toString(16).padStart(8, '0')}.json`;
}

/** Whether a `.gcwal/tmp` entry is a pending sidecar. */
export function isPendingSidecarName(name: string): boolean {
  return name.startsWith('pending-') && name.endsWith('.json');
}

/** The sidecar at `file`; undefined when it is absent or not a sidecar (half-written by a legacy writer). */
export async function readSidecar(file: string, what: string): Promise<Sidecar | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Sidecar;
    return typeof parsed === 'object' && parsed !== null && typeof parsed.size === 'number' && typeof parsed.crc32c === 'string' ? parsed : undefined;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    if (err instanceof SyntaxError) return undefined;
    throw mapFsError(err, what);
  }
}

/**
 * Write `sidecar` to `file` with FILE_MODE and fsync it, then fsync its
 * directory, so the entry is on disk before the data it describes is
 * linked under its key. Replaces a leftover at that name: a pending name
 * is derived from an inode this writer's temp file holds, so a file
 * already there is a stale one of an earlier file with that inode.
 */
export async function writeSidecarDurably(file: string, sidecar: Sidecar): Promise<void> {
  await fs.writeFile(file, JSON.stringify(sidecar), { mode: FILE_MODE });
  await fsyncPath(file);
  await fsyncPath(path.dirname(file));
}

/**
 * Rename the pending sidecar at `pending` to `metaPath` if it describes a
 * data file of `size` bytes (a stale one of a reused inode does not), and
 * return it; undefined when there is none or it does not fit. On storage
 * the caller may only read (EACCES, EROFS) the pending sidecar is returned
 * without being moved. A concurrent caller may have renamed it first: then
 * this returns undefined and the caller reads `metaPath` again.
 */
export async function settlePendingSidecar(pending: string, metaPath: string, size: bigint): Promise<Sidecar | undefined> {
  const sidecar = await readSidecar(pending, `read pending metadata ${path.basename(pending)}`).catch(() => undefined);
  if (!sidecar || BigInt(sidecar.size) !== size) return undefined;
  try {
    await fs.rename(pending, metaPath);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    if (isErrno(err, 'EACCES') || isErrno(err, 'EPERM') || isErrno(err, 'EROFS')) return sidecar;
    throw mapFsError(err, `rename pending metadata ${path.basename(pending)}`);
  }
  // Not fsynced: if the rename is lost in a power failure, the pending file
  // is back and the next access renames it again.
  return sidecar;
}
