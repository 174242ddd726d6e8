import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { isErrno } from './errors.ts';
import { isPendingSidecarName, readSidecar } from './sidecar.ts';

/**
 * Age after which a file in `.gcwal/tmp` is left over from a writer that
 * died (kill -9, power loss) and is removed. The age is that of the file's
 * last write: a live writer streaming a backup part touches its temp file
 * with every chunk, and holds a pending sidecar only for the link and rename
 * that follow it, so a live writer's files are never nearly this old. Were
 * one to stall longer, removing its temp file makes its write fail (its
 * fsync or link finds no file), never succeed with partial data.
 */
export const TEMP_SWEEP_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * Remove the files in `tmpDir` last written more than `ageMs` before `now`.
 * A pending sidecar first gets `settle(key)` called with its key, which
 * renames it into place if its data was linked and the writer died before
 * the rename; only what is still there afterwards is removed. Pending
 * sidecars go before temp data files, so a stale pending never outlives the
 * file whose inode it names. Best effort: returns the names removed and
 * skips what it cannot remove.
 */
export async function sweepTemp(tmpDir: string, now: number, settle: (key: string) => Promise<unknown>, ageMs = TEMP_SWEEP_AGE_MS): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(tmpDir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const ordered = [...names.filter(isPendingSidecarName), ...names.filter((n) => !isPendingSidecarName(n))];
  const removed: string[] = [];
  for (const name of ordered) {
    const file = path.join(tmpDir, name);
    try {
      const st = await fs.lstat(file);
      if (!st.isFile() || now - st.mtimeMs < ageMs) continue;
      if (isPendingSidecarName(name)) {
        const key = (await readSidecar(file, `read ${name}`))?.key;
        if (key !== undefined) await settle(key);
      }
      await fs.unlink(file);
      removed.push(name);
    } catch {
      // Gone already (settled, or another sweeper), or not ours to remove.
    }
  }
  return removed;
}

/**
 * How long data found under a key without a sidecar or a pending one must
 * have gone unwritten before a create of that key moves it aside. Such data
 * comes from a gcwal version that linked data before writing any sidecar
 * (killed between its two steps), or was copied in by hand; a writer of
 * such a version running right now finishes its two steps within
 * milliseconds, so a minute tells the two apart.
 */
export const ORPHAN_AGE_MS = 60_000;

/**
 * Move `dataPath`, data without metadata that no reader can decode, to
 * `<orphanDir>/<key with / as %2F>.<inode>`: a create then writes the key
 * afresh (roll back), and nothing is deleted, so a person can still look at
 * it. Returns false when the file was no longer there.
 */
export async function moveOrphanAside(dataPath: string, orphanDir: string, key: string, ino: bigint): Promise<boolean> {
  try {
    await fs.rename(dataPath, path.join(orphanDir, `${encodeURIComponent(key)}.${ino}`));
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}
