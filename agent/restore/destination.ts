/**
 * Restore targets (the data directory, tablespace directories) must be new
 * or empty: restore never mixes its files with someone else's. These checks
 * run before anything is written.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { DestinationNotEmptyError, UsageError } from '../../core/errors.ts';

/** Left in the data directory while a restore runs; removed only once it succeeded. */
export const INCOMPLETE_MARKER = '.gcwal-restore-incomplete';

/** Whether a restore target exists (empty) or has to be created. */
export type TargetState = 'absent' | 'empty';

/**
 * Check that `dir` is absent or an empty directory, touching nothing.
 * Throws DestinationNotEmptyError naming it when it has entries, and
 * UsageError when it exists but is not a directory. `what` names it in
 * messages (e.g. "tablespace 16385 target").
 */
export async function checkTarget(dir: string, what: string): Promise<TargetState> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    if (code === 'ENOTDIR') throw new UsageError(`${what} ${dir} exists and is not a directory`, 'restore into a new or empty directory');
    throw err;
  }
  if (entries.length > 0) throw new DestinationNotEmptyError(dir);
  return 'empty';
}

/**
 * Create a restore target with mode 0700 (PostgreSQL refuses a data
 * directory others can read), with any missing parents. Returns the
 * directories it created, outermost first, so their parents can be fsynced.
 */
export async function createTarget(dir: string): Promise<string[]> {
  const first = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700); // mkdir's mode is filtered by the umask
  if (first === undefined) return [];
  const created: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    created.unshift(d);
    if (d === first) break;
  }
  return created;
}

/**
 * Make an existing data directory acceptable to PostgreSQL, which requires
 * mode 0700 or 0750: tighten anything looser to 0700. Returns true when it
 * changed the mode.
 */
export async function tightenDataDirectoryMode(dir: string): Promise<boolean> {
  const mode = (await fs.stat(dir)).mode & 0o777;
  if ((mode & 0o027) === 0) return false;
  await fs.chmod(dir, 0o700);
  return true;
}
