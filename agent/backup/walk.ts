import type { Dirent, Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { BackupTablespace } from '../../core/backup/meta.ts';
import { InvalidInputError } from '../../core/errors.ts';
import {
  ARCHIVE_STATUS_DIR,
  EXCLUDED_DIR_CONTENTS,
  excludedNameReason,
  excludedRelationReason,
  isDatabaseDirectory,
  isTablespaceVersionDirectory,
  TABLESPACE_DIR,
  WAL_DIR,
} from './exclude.ts';

/** One thing to back up, found by the walk. */
export interface WalkEntry {
  /** path inside the backup (tar name, manifest path): relative, `/`-separated */
  path: string;
  /** absolute path to read it from */
  source: string;
  /** `symlink` only for tablespace links, which go to the manifest, not the tar */
  type: 'file' | 'directory' | 'symlink';
  /** size at walk time (files); the tar header takes the size at open time */
  size: number;
  /** permission bits */
  mode: number;
  mtime: Date;
  /** symlink target as read from the link */
  target?: string;
}

/** What the walk found. */
export interface WalkResult {
  /** depth first, names sorted, each directory before its contents */
  entries: WalkEntry[];
  tablespaces: BackupTablespace[];
  /** sum of file sizes at walk time */
  totalBytes: number;
  fileCount: number;
}

/** Why something was left out; `warn` for what PostgreSQL warns about too. */
export type SkipLevel = 'debug' | 'warn';

export interface WalkOptions {
  /** major version of the server (15): picks the tablespace version directories */
  pgMajor: number;
  signal?: AbortSignal;
  /** told about everything left out, with the reason */
  onSkip?: (relPath: string, reason: string, level: SkipLevel) => void;
}

const LSTAT_BATCH = 64;

interface Walker {
  options: WalkOptions;
  result: WalkResult;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function readError(what: string, err: unknown): InvalidInputError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new InvalidInputError(`cannot read ${what}: ${code}`, 'run gcwal as the postgres OS user (or root) on the database host', { cause: err });
}

/** lstat, or undefined when the path vanished since readdir (not an error in a live cluster). */
async function lstatIfPresent(abs: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(abs);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw readError(abs, err);
  }
}

/**
 * lstat every child, a batch at a time: base/<oid> can hold tens of
 * thousands of files, too slow one by one and too much memory all at once.
 */
async function lstatAll(absDir: string, children: Dirent[]): Promise<(Stats | undefined)[]> {
  const out: (Stats | undefined)[] = [];
  for (let i = 0; i < children.length; i += LSTAT_BATCH) {
    const batch = children.slice(i, i + LSTAT_BATCH);
    out.push(...(await Promise.all(batch.map((c) => lstatIfPresent(path.join(absDir, c.name))))));
  }
  return out;
}

/** Sorted directory listing, or undefined when the directory vanished. */
async function readDirIfPresent(abs: string): Promise<Dirent[] | undefined> {
  try {
    const list = await fs.readdir(abs, { withFileTypes: true });
    return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw readError(abs, err);
  }
}

function push(w: Walker, relPath: string, source: string, type: WalkEntry['type'], st: Stats, target?: string): void {
  const size = type === 'file' ? st.size : 0;
  w.result.entries.push({ path: relPath, source, type, size, mode: st.mode & 0o7777, mtime: st.mtime, ...(target !== undefined ? { target } : {}) });
  if (type === 'file') {
    w.result.totalBytes += size;
    w.result.fileCount++;
  }
}

/** A directory kept without its contents; a symlink to one (pg_wal on another disk) is stored as a directory. */
async function pushEmptyDir(w: Walker, relPath: string, abs: string, st: Stats): Promise<void> {
  const dirStat = st.isSymbolicLink() ? await fs.stat(abs).catch(() => st) : st;
  push(w, relPath, abs, 'directory', dirStat);
}

/**
 * pg_wal and its subdirectories (archive_status, summaries in 17) as empty
 * directories: the WAL a restore needs comes from the archive. archive_status
 * is always written, as pg_basebackup does, since archiving needs it.
 */
async function walkWalDir(w: Walker, abs: string, st: Stats): Promise<void> {
  await pushEmptyDir(w, WAL_DIR, abs, st);
  const children = (await readDirIfPresent(abs)) ?? [];
  let sawArchiveStatus = false;
  for (const child of children) {
    const childStat = await lstatIfPresent(path.join(abs, child.name));
    if (!childStat?.isDirectory()) continue;
    if (child.name === ARCHIVE_STATUS_DIR) sawArchiveStatus = true;
    push(w, `${WAL_DIR}/${child.name}`, path.join(abs, child.name), 'directory', childStat);
  }
  if (!sawArchiveStatus) push(w, `${WAL_DIR}/${ARCHIVE_STATUS_DIR}`, path.join(abs, ARCHIVE_STATUS_DIR), 'directory', await fs.stat(abs).catch(() => st));
}

/**
 * A tablespace link pg_tblspc/<oid>: recorded as a symlink (manifest only)
 * and a BackupTablespace, then this server version's directory inside the
 * location is walked and stored under pg_tblspc/<oid>/.
 */
async function walkTablespace(w: Walker, relPath: string, abs: string, st: Stats): Promise<void> {
  let target: string;
  try {
    target = await fs.readlink(abs);
  } catch (err) {
    if (isMissing(err)) return;
    throw readError(abs, err);
  }
  const oid = path.posix.basename(relPath);
  push(w, relPath, abs, 'symlink', st, target);
  w.result.tablespaces.push({ oid, location: target });
  const location = path.resolve(path.dirname(abs), target);
  const children = await readDirIfPresent(location);
  if (!children) {
    w.options.onSkip?.(relPath, `tablespace location ${target} is missing`, 'warn');
    return;
  }
  for (const child of children) {
    if (!isTablespaceVersionDirectory(child.name, w.options.pgMajor)) continue;
    const childAbs = path.join(location, child.name);
    const childStat = await lstatIfPresent(childAbs);
    if (!childStat?.isDirectory()) continue;
    const childRel = `${relPath}/${child.name}`;
    push(w, childRel, childAbs, 'directory', childStat);
    await walkDir(w, childRel, childAbs);
  }
}

/** Walk the contents of one directory (its own entry is already recorded). */
async function walkDir(w: Walker, relDir: string, absDir: string): Promise<void> {
  w.options.signal?.throwIfAborted();
  const children = await readDirIfPresent(absDir);
  if (!children) {
    w.options.onSkip?.(relDir, 'vanished during the walk', 'debug');
    return;
  }
  const names = new Set(children.map((c) => c.name));
  const isDbDir = isDatabaseDirectory(relDir);
  const top = relDir === '';
  const stats = await lstatAll(absDir, children);
  for (let i = 0; i < children.length; i++) {
    const name = children[i].name;
    const relPath = top ? name : `${relDir}/${name}`;
    const abs = path.join(absDir, name);
    const st = stats[i];
    const skip = (reason: string, level: SkipLevel = 'debug') => w.options.onSkip?.(relPath, reason, level);

    const nameReason = excludedNameReason(name);
    if (nameReason) {
      skip(nameReason);
      continue;
    }
    const relReason = isDbDir ? excludedRelationReason(name, names) : undefined;
    if (relReason) {
      skip(relReason);
      continue;
    }
    if (!st) {
      skip('vanished during the walk');
      continue;
    }

    if (top && EXCLUDED_DIR_CONTENTS.has(name) && (st.isDirectory() || st.isSymbolicLink())) {
      await pushEmptyDir(w, relPath, abs, st);
      continue;
    }
    if (top && name === WAL_DIR && (st.isDirectory() || st.isSymbolicLink())) {
      await walkWalDir(w, abs, st);
      continue;
    }
    if (relDir === TABLESPACE_DIR && st.isSymbolicLink()) {
      await walkTablespace(w, relPath, abs, st);
      continue;
    }
    if (st.isDirectory()) {
      push(w, relPath, abs, 'directory', st);
      await walkDir(w, relPath, abs);
    } else if (st.isFile()) {
      push(w, relPath, abs, 'file', st);
    } else {
      // As pg_basebackup: only tablespace links are followed; other symlinks,
      // sockets and fifos are not part of a cluster's state.
      skip(st.isSymbolicLink() ? 'symbolic link outside pg_tblspc' : 'special file', 'warn');
    }
  }
}

/**
 * Walk a data directory the way pg_basebackup does, returning what to back
 * up: directories, regular files, tablespace links (followed: their contents
 * appear under `pg_tblspc/<oid>/`). Left out, with a call to onSkip: the
 * contents of EXCLUDED_DIR_CONTENTS and pg_wal (the directories are kept),
 * the files named in exclude.ts, `pgsql_tmp*`, temporary relations and the
 * non-init forks of unlogged relations. Files and directories that vanish
 * during the walk are skipped (a running cluster drops tables). Throws
 * InvalidInputError when something cannot be read for another reason
 * (permissions) or `pgdata` is not a directory.
 */
export async function walkDataDirectory(pgdata: string, options: WalkOptions): Promise<WalkResult> {
  let st: Stats;
  try {
    st = await fs.stat(pgdata);
  } catch (err) {
    throw readError(`data directory ${pgdata}`, err);
  }
  if (!st.isDirectory()) throw new InvalidInputError(`${pgdata} is not a directory`, 'pass the data directory of the running server');
  const w: Walker = { options, result: { entries: [], tablespaces: [], totalBytes: 0, fileCount: 0 } };
  await walkDir(w, '', pgdata);
  return w.result;
}
