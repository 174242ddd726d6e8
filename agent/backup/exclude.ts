/**
 * What a base backup leaves out of the data directory, following PostgreSQL's
 * own rules (basebackup.c's excludeDirContents/excludeFiles and the manual's
 * "Making a Base Backup Using the Low Level API"). Pure functions over names,
 * so the rules are testable without a file system.
 */

/**
 * Top-level directories whose contents are removed, recreated or not needed
 * at server start. The directories themselves are kept (empty) so the
 * restored cluster has them with the right permissions.
 */
export const EXCLUDED_DIR_CONTENTS: ReadonlySet<string> = new Set([
  'pg_dynshmem', // removed on start
  'pg_notify', // removed on start
  'pg_replslot', // slots would pin WAL on the restored server
  'pg_serial', // only kept for debugging
  'pg_snapshots', // removed on start
  'pg_stat_tmp', // temporary statistics
  'pg_subtrans', // zeroed on start
]);

/** The WAL directory: kept empty; WAL comes from the archive. */
export const WAL_DIR = 'pg_wal';

/** Subdirectory of pg_wal that must exist for archiving to work after restore. */
export const ARCHIVE_STATUS_DIR = 'archive_status';

/** The control file, copied after everything else as pg_basebackup does. */
export const CONTROL_FILE = 'global/pg_control';

/** Directory whose entries are tablespace symlinks. */
export const TABLESPACE_DIR = 'pg_tblspc';

/** Prefix of temporary files and directories (work_mem spills, etc.). */
const TEMP_PREFIX = 'pgsql_tmp';

/**
 * Files excluded wherever they are found, with why. backup_label and
 * tablespace_map would be stale: ours come from pg_backup_stop. (pgBackRest
 * leaves out the two signal files too.)
 */
const EXCLUDED_FILES: ReadonlyMap<string, string> = new Map([
  ['postgresql.auto.conf.tmp', 'temporary file of ALTER SYSTEM'],
  ['current_logfiles.tmp', 'temporary file of the logging collector'],
  ['backup_label', 'stale backup label; the backup carries its own'],
  ['tablespace_map', 'stale tablespace map; the backup carries its own'],
  ['backup_manifest', 'manifest of the backup this server was restored from'],
  ['postmaster.pid', 'lock file of the running server'],
  ['postmaster.opts', 'options of the running server'],
  // A backup of a standby restores like any other: backup-fetch writes the
  // recovery settings it asks for, and a copied standby.signal would win
  // over them (standby mode, streaming from the live primary).
  ['standby.signal', 'standby mode of the server backed up; the restore sets up its own recovery'],
  ['recovery.signal', 'recovery mode of the server backed up; the restore sets up its own recovery'],
]);

/** The relation cache file is rebuilt at start; its temporary copies too. */
const RELCACHE_PREFIX = 'pg_internal.init';

/**
 * Why a file or directory named `name` is left out wherever it appears, or
 * undefined when it is backed up.
 */
export function excludedNameReason(name: string): string | undefined {
  if (name.startsWith(TEMP_PREFIX)) return 'temporary file';
  if (name.startsWith(RELCACHE_PREFIX)) return 'relation cache, rebuilt at start';
  return EXCLUDED_FILES.get(name);
}

/**
 * Whether `relDir` (relative to the data directory, `/`-separated) holds a
 * database's relation files: `base/<oid>` or
 * `pg_tblspc/<oid>/<version dir>/<oid>`.
 */
export function isDatabaseDirectory(relDir: string): boolean {
  return /^base\/\d+$/.test(relDir) || /^pg_tblspc\/\d+\/PG_[^/]+\/\d+$/.test(relDir);
}

/** A relation file name taken apart: `<relfilenode>[_<fork>][.<segment>]`. */
export interface RelationFileName {
  relNumber: string;
  /** main, fsm, vm or init */
  fork: 'main' | 'fsm' | 'vm' | 'init';
  /** true for a temporary relation (`t<backend>_<relfilenode>`) */
  temporary: boolean;
}

/** Parse a file name in a database directory as a relation file, or undefined. */
export function parseRelationFileName(name: string): RelationFileName | undefined {
  const m = /^(t\d+_)?(\d+)(?:_(fsm|vm|init))?(?:\.\d+)?$/.exec(name);
  if (!m) return undefined;
  return { relNumber: m[2], fork: (m[3] as RelationFileName['fork'] | undefined) ?? 'main', temporary: m[1] !== undefined };
}

/**
 * Why a file in a database directory is left out, given the other names in
 * that directory, or undefined to keep it. Temporary relations are dropped
 * at start; an unlogged relation (one with an `_init` fork) is reset from its
 * init fork at the end of recovery, so only the init fork is needed.
 */
export function excludedRelationReason(name: string, siblings: ReadonlySet<string>): string | undefined {
  const rel = parseRelationFileName(name);
  if (!rel) return undefined;
  if (rel.temporary) return 'temporary relation';
  if (rel.fork !== 'init' && siblings.has(`${rel.relNumber}_init`)) return 'unlogged relation, reset from its init fork';
  return undefined;
}

/**
 * The subdirectory of a tablespace location that belongs to this server
 * version (`PG_15_202209061`): other versions' directories, left by
 * pg_upgrade, are not ours to copy.
 */
export function isTablespaceVersionDirectory(name: string, pgMajor: number): boolean {
  return name.startsWith(`PG_${pgMajor}_`);
}
