/**
 * Restore targets (the data directory, tablespace directories) must be new
 * or empty: restore never mixes its files with someone else's. These checks
 * run before anything is written. The one exception is a restore gcwal
 * itself left unfinished (killed, or failed): its data directory holds
 * INCOMPLETE_MARKER, which names the tablespace directories it wrote to, and
 * a new restore clears and redoes it.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { DestinationNotEmptyError, UsageError } from '../../core/errors.ts';
import { syncDirectory } from './disk.ts';

/** Left in the data directory while a restore runs; removed only once it succeeded. */
export const INCOMPLETE_MARKER = '.gcwal-restore-incomplete';
/** The name the marker is written under before its rename (disk.ts writeFileDurably). */
const MARKER_TEMP = `${INCOMPLETE_MARKER}.gcwal-tmp`;

/**
 * Whether a restore target exists (empty), has to be created, or holds a
 * restore gcwal left unfinished (to be cleared).
 */
export type TargetState = 'absent' | 'empty' | 'unfinished';

/** The data directory's state and, when unfinished, the tablespace directories its marker names. */
export interface DestinationState {
  state: TargetState;
  markedTablespaces: readonly string[];
}

/**
 * Check the data directory `dest`, touching nothing: absent, empty, or
 * unfinished (it holds INCOMPLETE_MARKER, or only the marker's temp file of
 * a restore killed while writing it). Throws DestinationNotEmptyError for
 * any other non-empty directory, UsageError when it is not a directory.
 */
export async function checkDestination(dest: string): Promise<DestinationState> {
  let entries: string[];
  try {
    entries = await fs.readdir(dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'absent', markedTablespaces: [] };
    if (code === 'ENOTDIR') throw new UsageError(`destination ${dest} exists and is not a directory`, 'restore into a new or empty directory');
    throw err;
  }
  if (entries.length === 0) return { state: 'empty', markedTablespaces: [] };
  if (entries.includes(INCOMPLETE_MARKER))
    return { state: 'unfinished', markedTablespaces: parseMarker(await fs.readFile(path.join(dest, INCOMPLETE_MARKER), 'utf8')) };
  if (entries.every((e) => e === MARKER_TEMP)) return { state: 'unfinished', markedTablespaces: [] };
  throw new DestinationNotEmptyError(dest);
}

/** Whether dest looks like a finished restore no server has started: a backup_label and no postmaster.pid (finishedRestoreOf decides for a given backup). */
export async function mayBeFinishedRestore(dest: string): Promise<boolean> {
  const exists = (name: string) =>
    fs.access(path.join(dest, name)).then(
      () => true,
      () => false,
    );
  return (await exists('backup_label')) && !(await exists('postmaster.pid'));
}

/**
 * A data directory without the marker that holds a finished restore of the
 * backup with `backupLabel` (the very backup_label restore writes) on which
 * PostgreSQL has not run (it renames backup_label when it starts, and there
 * is no postmaster.pid): a backup-fetch killed after finishing, before it
 * could report success. Its rerun may redo it, clearing the tablespace
 * directories its tablespace_map names. Throws DestinationNotEmptyError
 * otherwise.
 */
export async function finishedRestoreOf(dest: string, backupLabel: string, tablespaceMapTargets: (text: string) => string[]): Promise<DestinationState> {
  const read = (name: string) => fs.readFile(path.join(dest, name), 'utf8').catch(() => undefined);
  const label = await read('backup_label');
  if (label === undefined || label !== backupLabel || (await read('postmaster.pid')) !== undefined) throw new DestinationNotEmptyError(dest);
  return { state: 'unfinished', markedTablespaces: tablespaceMapTargets((await read('tablespace_map')) ?? '') };
}

/**
 * The marker's text: what it is, for a person who finds it, then one line
 * per tablespace directory the restore writes to, so that a rerun may clear
 * those too. Written before anything else of the restore.
 */
export function markerContent(backupName: string, tablespaceTargets: readonly string[], started: Date): string {
  const head = `gcwal backup-fetch of ${backupName} started ${started.toISOString()}; this directory is not usable until it finishes (run the same backup-fetch again to redo it)\n`;
  return head + tablespaceTargets.map((t) => `tablespace ${t}\n`).join('');
}

/** The tablespace directories a marker names (absolute paths; anything else is ignored). */
export function parseMarker(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('tablespace /'))
    .map((line) => line.slice('tablespace '.length));
}

/**
 * Remove everything in `dir` but the entries named in `keep` (symbolic
 * links are removed, never followed), then fsync it: the contents of an
 * unfinished restore, cleared before it is redone.
 */
export async function clearTarget(dir: string, keep: readonly string[]): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (!keep.includes(name)) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  }
  await syncDirectory(dir);
}

/**
 * Check that `dir` is absent or an empty directory, touching nothing.
 * Throws DestinationNotEmptyError naming it when it has entries (unless
 * `unfinished`: the marker of an unfinished restore names it, and then it is
 * `unfinished`), and UsageError when it exists but is not a directory.
 * `what` names it in messages (e.g. "tablespace 16385 target").
 */
export async function checkTarget(dir: string, what: string, unfinished = false): Promise<TargetState> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    if (code === 'ENOTDIR') throw new UsageError(`${what} ${dir} exists and is not a directory`, 'restore into a new or empty directory');
    throw err;
  }
  if (entries.length === 0) return 'empty';
  if (unfinished) return 'unfinished';
  throw new DestinationNotEmptyError(dir);
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
