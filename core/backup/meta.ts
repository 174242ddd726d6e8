import type { CodecName } from '../codec/types.ts';
import { CorruptObjectError } from '../errors.ts';

/** One tar part of a backup as stored. */
export interface BackupPart {
  /** object key of the part */
  key: string;
  /** uncompressed tar bytes */
  rawSize: number;
  /** CRC32C of the uncompressed tar bytes, base64 (GCS style) */
  rawCrc32c: string;
  /** stored bytes */
  storedSize: number;
  /** CRC32C of the stored bytes, base64 */
  storedCrc32c: string;
  codec: CodecName;
  /** number of files (tar entries of type file) in the part */
  files: number;
}

/** A tablespace found under pg_tblspc at backup time. */
export interface BackupTablespace {
  oid: string;
  /** absolute path it was linked to on the source host */
  location: string;
}

/**
 * One line of the manifest (`manifest.jsonl`): a file or directory of the backup.
 * Paths are relative to the data directory; tablespace files are under
 * `pg_tblspc/<oid>/...` (the tar holds them at the same path).
 */
export interface ManifestEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** bytes stored in the tar for this file (what restore must find) */
  size: number;
  /** CRC32C of those bytes, base64; files only */
  crc32c?: string;
  /** index into BackupMeta.parts */
  part?: number;
  mode: number;
  /** ISO time */
  mtime: string;
  /** symlink target */
  target?: string;
}

/**
 * The backup's metadata object (`backups/<name>/backup.json`). Written last:
 * a backup without it is incomplete and invisible to list and restore.
 */
export interface BackupMeta {
  format: 1;
  name: string;
  /** system identifier as a decimal string (it exceeds 2^53) */
  systemIdentifier: string;
  /** server_version_num, e.g. 150010 */
  pgVersionNum: number;
  /** e.g. "15.10" */
  pgVersion: string;
  walSegmentSize: number;
  timeline: number;
  /** formatted like PostgreSQL prints LSNs, e.g. "0/4000028" */
  startLsn: string;
  stopLsn: string;
  startWalSegment: string;
  stopWalSegment: string;
  /** ISO times */
  startTime: string;
  stopTime: string;
  /** sum of file sizes */
  rawSize: number;
  /** sum of stored part sizes */
  storedSize: number;
  fileCount: number;
  codec: CodecName;
  parts: BackupPart[];
  tablespaces: BackupTablespace[];
  /** contents returned by pg_backup_stop */
  backupLabel: string;
  tablespaceMap: string;
  /** manifest object key and its checksums */
  manifest: { key: string; storedSize: number; storedCrc32c: string; entries: number };
  /** gcwal version that wrote it */
  gcwalVersion: string;
}

/** Serialise metadata as stable, pretty JSON. */
export function serializeBackupMeta(meta: BackupMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}

/**
 * Parse and check a backup.json body. Throws CorruptObjectError naming the
 * backup when it is not valid JSON or lacks a required field.
 */
export function parseBackupMeta(text: string, where: string): BackupMeta {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CorruptObjectError(`backup metadata ${where} is not valid json`);
  }
  const m = value as Partial<BackupMeta>;
  const required: (keyof BackupMeta)[] = ['name', 'systemIdentifier', 'pgVersionNum', 'walSegmentSize', 'timeline', 'startLsn', 'stopLsn', 'startWalSegment', 'stopWalSegment', 'startTime', 'stopTime', 'parts', 'backupLabel', 'manifest', 'codec'];
  if (typeof value !== 'object' || value === null || m.format !== 1) throw new CorruptObjectError(`backup metadata ${where} has an unknown format`, 'upgrade gcwal or check the object');
  for (const key of required) {
    if (m[key] === undefined) throw new CorruptObjectError(`backup metadata ${where} lacks ${key}`);
  }
  if (!Array.isArray(m.parts)) throw new CorruptObjectError(`backup metadata ${where} has no parts list`);
  return m as BackupMeta;
}
