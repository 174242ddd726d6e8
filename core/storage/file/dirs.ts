import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncPath } from '../../fsync.ts';
import { isErrno } from './errors.ts';

/**
 * Modes of everything the file driver creates, whatever the caller's umask:
 * a base backup holds pg_authid (password hashes), so nothing in a
 * repository is for other users. Files are created with FILE_MODE (a umask
 * can only make that stricter); directories are chmod'ed after mkdir so that
 * a umask cannot take the owner's own rights away either.
 */
export const FILE_MODE = 0o600;
export const DIRECTORY_MODE = 0o700;

/**
 * Create `dir` and its missing parents below `base` (never `base` itself:
 * writes pass the repository root, which only `gcwal repo-create` makes, and
 * createRoot the file system's root), each with DIRECTORY_MODE, and fsync
 * the parent of every level created so that the new entry survives a power
 * loss together with the files written into it (`mkdir -p` with an fsync per
 * level). An existing directory costs one mkdir call. Throws the file
 * system's error; ENOENT when `base` is missing.
 */
export async function makeDirectories(base: string, dir: string): Promise<void> {
  const parent = path.dirname(dir);
  try {
    await fs.mkdir(dir, { mode: DIRECTORY_MODE });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return;
    if (!isErrno(err, 'ENOENT') || dir === base || !dir.startsWith(base.endsWith(path.sep) ? base : base + path.sep)) throw err;
    if (parent !== base) await makeDirectories(base, parent);
    try {
      await fs.mkdir(dir, { mode: DIRECTORY_MODE });
    } catch (again) {
      if (!isErrno(again, 'EEXIST')) throw again;
      // Another writer made it a moment ago and may not have fsynced its
      // parent yet; ours is about to be written into it.
      await fsyncPath(parent);
      return;
    }
  }
  await fs.chmod(dir, DIRECTORY_MODE);
  await fsyncPath(parent);
}
