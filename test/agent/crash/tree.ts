/**
 * A directory tree as a map from relative path to what is there (type, mode,
 * and a file's size and CRC32C or a link's target), to compare two restores.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '../../../core/checksum/crc32c.ts';

export type TreeSnapshot = Map<string, string>;

export async function snapshotTree(root: string): Promise<TreeSnapshot> {
  const out: TreeSnapshot = new Map();
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const full = path.join(e.parentPath, e.name);
    const rel = path.relative(root, full);
    const st = await lstat(full);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.set(rel, `link ${await readlink(full)}`);
    else if (st.isDirectory()) out.set(rel, `dir ${mode}`);
    else out.set(rel, `file ${mode} ${st.size} ${crc32c(await readFile(full))}`);
  }
  return out;
}
