/**
 * The repository layout: every object key gcwal reads or writes comes from
 * here. Keys are relative to the repository root (`gs://bucket/prefix` or
 * `file:///dir`). Names are fixed-width hex so a listing comes back in WAL
 * order. The codec is never part of a key: it is in the object's metadata, so
 * a fetch needs no probing.
 */

/** Repository identity: system identifier, created once, never rewritten. */
export const REPOSITORY_KEY = 'gcwal.json';

/** Prefix of WAL segments, history, .backup and .partial files. */
export const WAL_PREFIX = 'wal/';

/** Prefix of base backups; each backup is a folder under it. */
export const BACKUP_PREFIX = 'backups/';

/** Object key for a file from pg_wal (segment, history, .backup, .partial). */
export function walObjectKey(fileName: string): string {
  return WAL_PREFIX + fileName;
}

/** The pg_wal file name an object key under `wal/` holds, or undefined. */
export function walFileNameFromKey(key: string): string | undefined {
  return key.startsWith(WAL_PREFIX) ? key.slice(WAL_PREFIX.length) : undefined;
}

/** Folder of one backup, with a trailing slash. */
export function backupPrefix(backupName: string): string {
  return `${BACKUP_PREFIX}${backupName}/`;
}

/** The backup's metadata object; written last, its presence makes the backup visible. */
export function backupMetaKey(backupName: string): string {
  return `${backupPrefix(backupName)}backup.json`;
}

/** Data part `index` (0-based) of a backup: a tar stream, compressed. */
export function backupPartKey(backupName: string, index: number): string {
  return `${backupPrefix(backupName)}part_${String(index).padStart(5, '0')}.tar`;
}

/** Per-file manifest (JSON lines), written before the metadata. */
export function backupManifestKey(backupName: string): string {
  return `${backupPrefix(backupName)}manifest.jsonl`;
}

/** The backup name a key under `backups/` belongs to, or undefined. */
export function backupNameFromKey(key: string): string | undefined {
  if (!key.startsWith(BACKUP_PREFIX)) return undefined;
  const rest = key.slice(BACKUP_PREFIX.length);
  const slash = rest.indexOf('/');
  return slash > 0 ? rest.slice(0, slash) : undefined;
}

/** `base_` + the 24-hex WAL segment name holding the backup's start LSN. */
export function backupName(startSegmentName: string): string {
  return `base_${startSegmentName}`;
}

/** Whether a string is a syntactically valid backup name. */
export function isBackupName(name: string): boolean {
  return /^base_[0-9A-F]{24}(_[0-9A-F]{8})?$/.test(name);
}

/** Object metadata keys. Values are strings (GCS custom metadata). */
export const Meta = {
  codec: 'gcwal-codec',
  rawSize: 'gcwal-raw-size',
  rawCrc32c: 'gcwal-raw-crc32c',
  systemId: 'gcwal-system-id',
} as const;

/**
 * The pipeline's catalogue (see core/catalogue/types.ts). The only object
 * gcwal ever replaces, and only the functions do, with generation
 * preconditions; the agent reads it.
 */
export const CATALOGUE_KEY = 'catalogue/catalogue.json';
