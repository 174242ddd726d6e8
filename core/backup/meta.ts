import { CODEC_NAMES, type CodecName } from '../codec/types.ts';
import { CorruptObjectError, InvalidInputError } from '../errors.ts';
import { backupManifestKey, backupNameFromKey, backupPartKey, isBackupName } from '../layout.ts';
import { parseLsn } from '../wal/lsn.ts';
import { isValidSegmentSize, MAX_TIMELINE, parseWalSegmentName, segmentNumberOfEndLsn, segmentNumberOfLsn } from '../wal/name.ts';
import { quoteForMessage } from '../wal/quote.ts';
import { CRC32C_BASE64, describeValue, Fields, isoTime } from './fields.ts';
import { isTablespaceOid, tablespaceLocationProblem } from './paths.ts';

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
  /**
   * An incremental backup's file stored in an older backup of its chain: the
   * name of the backup whose parts hold the bytes (then `part` is absent;
   * `size` and `crc32c` are that backup's, which restore verifies).
   */
  ref?: string;
  /** files of BLOCKS_MIN_FILE bytes or more (core/checksum/blocks.ts): the size of the blocks of `blocks` */
  blockSize?: number;
  /** the CRC32C of each block of `blockSize` bytes (the last may be shorter), 4 bytes each, big-endian, base64 */
  blocks?: string;
  /**
   * Manifest format 2, non-empty files of lzo parts (agent/backup/offsets.ts):
   * where the file's data begins in the part's raw tar bytes; the stored
   * range [storedOffset, storedEnd) of the lzop blocks holding it, which
   * decodes to raw bytes from blockOffset on. All four or none.
   */
  offset?: number;
  blockOffset?: number;
  storedOffset?: number;
  storedEnd?: number;
}

/** backup.json's format of a full backup; gcwal before incremental backups knows only this one. */
export const FULL_FORMAT = 1;
/**
 * backup.json's format of an incremental backup: `parent` and `full` are
 * set, and manifest entries may name the backup holding a file (`ref`).
 * A newer format number, so a gcwal that cannot rebuild a chain refuses it
 * by name ("has format 2, which this gcwal does not know") instead of
 * restoring an incomplete data directory.
 */
export const INCREMENTAL_FORMAT = 2;

/**
 * The manifest format this gcwal writes and the newest it reads: 2 adds the
 * file ranges (ManifestEntry.offset ...); a backup.json without
 * `manifest.format` has a format 1 manifest. A newer one is refused by
 * parseBackupMeta rather than misread.
 */
export const MANIFEST_FORMAT = 2;

/**
 * The backup's metadata object (`backups/<name>/backup.json`). Written last:
 * a backup without it is incomplete and invisible to list and restore.
 */
export interface BackupMeta {
  /** FULL_FORMAT, or INCREMENTAL_FORMAT with `parent` and `full` */
  format: 1 | 2;
  name: string;
  /** incremental backups: the backup it holds the changes since (a full or another incremental of the same chain) */
  parent?: string;
  /** incremental backups: the full backup its chain starts from */
  full?: string;
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
  /** sum of the sizes of the files stored in this backup's parts (an incremental's referenced files are not counted) */
  rawSize: number;
  /** sum of stored part sizes */
  storedSize: number;
  /** files stored in this backup's parts */
  fileCount: number;
  codec: CodecName;
  parts: BackupPart[];
  tablespaces: BackupTablespace[];
  /** contents returned by pg_backup_stop */
  backupLabel: string;
  tablespaceMap: string;
  /** manifest object key and its checksums */
  manifest: { key: string; storedSize: number; storedCrc32c: string; entries: number; format?: number };
  /** gcwal version that wrote it */
  gcwalVersion: string;
}

/** Serialise metadata as stable, pretty JSON. */
export function serializeBackupMeta(meta: BackupMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}

const HINT = 'the backup metadata is damaged or was not written by gcwal; restore another backup';

const META_SHAPE = {
  required: [
    'format',
    'name',
    'systemIdentifier',
    'pgVersionNum',
    'pgVersion',
    'walSegmentSize',
    'timeline',
    'startLsn',
    'stopLsn',
    'startWalSegment',
    'stopWalSegment',
    'startTime',
    'stopTime',
    'rawSize',
    'storedSize',
    'fileCount',
    'codec',
    'parts',
    'tablespaces',
    'backupLabel',
    'tablespaceMap',
    'manifest',
    'gcwalVersion',
  ],
  optional: ['parent', 'full'],
};
const PART_SHAPE = { required: ['key', 'rawSize', 'rawCrc32c', 'storedSize', 'storedCrc32c', 'codec', 'files'] };
const TABLESPACE_SHAPE = { required: ['oid', 'location'] };
const MANIFEST_SHAPE = { required: ['key', 'storedSize', 'storedCrc32c', 'entries'], optional: ['format'] };

/** A system identifier: the decimal form of an unsigned 64-bit number other than 0. */
const SYSTEM_IDENTIFIER = /^[1-9][0-9]{0,19}$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

/**
 * Parse and check the body of backup.json stored at `key`, strictly: every
 * field the format defines and no other, each of its type and in range
 * (sizes and counts not negative, LSNs and segment names that parse, the
 * start not after the stop, a timeline from 1, a known codec, tablespace
 * OIDs in decimal and locations absolute and normalised), and the names
 * agreeing with the key (the backup's folder, its parts' and manifest's
 * keys). Throws CorruptObjectError naming the object and the field.
 */
export function parseBackupMeta(text: string, key: string): BackupMeta {
  // The key comes from a listing of untrusted storage: quoted unless plainly printable.
  const where = /^[\x21-\x7e]+$/.test(key) ? key : quoteForMessage(key, 200);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CorruptObjectError(`backup metadata ${where} is not valid json`, HINT);
  }
  if (typeof value === 'object' && value !== null && 'format' in value && value.format !== FULL_FORMAT && value.format !== INCREMENTAL_FORMAT) {
    throw new CorruptObjectError(
      `backup metadata ${where} has format ${describeValue(value.format)}, which this gcwal does not know`,
      'upgrade gcwal, or check the object',
    );
  }
  const f = Fields.of(value, '', META_SHAPE, (field, why) => new CorruptObjectError(`backup metadata ${where}: ${field} ${why}`, HINT));

  const name = f.string('name', 200);
  if (!isBackupName(name)) throw f.bad('name', `is ${quoteForMessage(name)}, not a backup name`);
  chainFields(f, name);
  const folder = backupNameFromKey(key);
  if (folder !== undefined && folder !== name) {
    throw new CorruptObjectError(
      `backup metadata ${where}: name is ${name}, but the object is in the folder of ${quoteForMessage(folder)}`,
      'the object was copied into the wrong folder; move it back or delete the folder',
    );
  }
  const systemIdentifier = f.matching('systemIdentifier', SYSTEM_IDENTIFIER, 'a system identifier (decimal)');
  if (BigInt(systemIdentifier) > 0xffff_ffff_ffff_ffffn) throw f.bad('systemIdentifier', 'is above 2^64-1');
  f.integer('pgVersionNum', 100000, 999999);
  f.string('pgVersion', 64);
  const segSize = f.integer('walSegmentSize', 1);
  if (!isValidSegmentSize(segSize)) throw f.bad('walSegmentSize', `is ${segSize}, not a power of two from 1 MiB to 1 GiB`);
  const timeline = f.integer('timeline', 1, MAX_TIMELINE);

  const startLsn = parseLsn(f.matching('startLsn', LSN, 'an lsn'));
  const stopLsn = parseLsn(f.matching('stopLsn', LSN, 'an lsn'));
  if (stopLsn < startLsn) throw f.bad('stopLsn', `is ${f.raw('stopLsn')}, before startLsn ${f.raw('startLsn')}`);
  const segment = (field: string) => {
    try {
      return parseWalSegmentName(f.string(field, 64), segSize);
    } catch (err) {
      if (err instanceof InvalidInputError) throw f.bad(field, `is not a segment name: ${err.message}`);
      throw err;
    }
  };
  if (segment('startWalSegment').segNo !== segmentNumberOfLsn(startLsn, segSize))
    throw f.bad('startWalSegment', `is ${f.raw('startWalSegment')}, which does not hold startLsn ${f.raw('startLsn')}`);
  const stop = segment('stopWalSegment');
  if (stopLsn > 0n && stop.segNo !== segmentNumberOfEndLsn(stopLsn, segSize))
    throw f.bad('stopWalSegment', `is ${f.raw('stopWalSegment')}, which does not end at stopLsn ${f.raw('stopLsn')}`);
  if (stop.timeline !== timeline) throw f.bad('stopWalSegment', `is ${f.raw('stopWalSegment')}, not on timeline ${timeline}`);
  if (isoTime(f, 'stopTime') < isoTime(f, 'startTime')) throw f.bad('stopTime', `is ${f.raw('stopTime')}, before startTime ${f.raw('startTime')}`);

  f.count('rawSize');
  f.count('storedSize');
  f.count('fileCount');
  codec(f, 'codec');
  f.list('parts').forEach((value, i) => {
    const p = f.element('parts', i, value, PART_SHAPE);
    const expected = backupPartKey(name, i);
    if (p.string('key', 1024) !== expected) throw p.bad('key', `is ${quoteForMessage(String(p.raw('key')))}, not ${expected}`);
    for (const k of ['rawSize', 'storedSize', 'files']) p.count(k);
    for (const k of ['rawCrc32c', 'storedCrc32c']) p.matching(k, CRC32C_BASE64, 'a base64 crc32c');
    codec(p, 'codec');
  });
  const oids = new Set<string>();
  f.list('tablespaces').forEach((value, i) => {
    const t = f.element('tablespaces', i, value, TABLESPACE_SHAPE);
    const oid = t.string('oid', 16);
    if (!isTablespaceOid(oid)) throw t.bad('oid', `is ${quoteForMessage(oid)}, not an oid (decimal)`);
    if (oids.has(oid)) throw t.bad('oid', `is ${oid}, which another tablespace has too`);
    oids.add(oid);
    const location = t.string('location');
    const problem = tablespaceLocationProblem(location);
    if (problem) throw t.bad('location', `is ${quoteForMessage(location)}, which ${problem}`);
  });
  // Compared as numbers: PostgreSQL 18 prints LSNs zero-padded (0/04000028).
  const start = /^START WAL LOCATION: ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}) \(file ([0-9A-F]{24})\)$/m.exec(f.string('backupLabel', 64 * 1024));
  if (!start || parseLsn(start[1]) !== startLsn || start[2] !== f.raw('startWalSegment')) {
    throw f.bad('backupLabel', `does not start at startLsn ${f.raw('startLsn')} in ${f.raw('startWalSegment')}`);
  }
  f.string('tablespaceMap', 1024 * 1024);
  const m = f.object('manifest', MANIFEST_SHAPE);
  if (m.string('key', 1024) !== backupManifestKey(name)) throw m.bad('key', `is ${quoteForMessage(String(m.raw('key')))}, not ${backupManifestKey(name)}`);
  m.count('storedSize');
  m.matching('storedCrc32c', CRC32C_BASE64, 'a base64 crc32c');
  m.count('entries');
  if (m.has('format') && m.integer('format', 1) > MANIFEST_FORMAT) {
    throw new CorruptObjectError(
      `backup metadata ${where}: the manifest has format ${m.raw('format')}, newer than this gcwal reads (up to ${MANIFEST_FORMAT})`,
      'upgrade gcwal to restore this backup',
    );
  }
  f.string('gcwalVersion', 100);
  return value as BackupMeta;
}

/** `parent` and `full`: backup names other than the backup's own, both present exactly in format 2. */
function chainFields(f: Fields, name: string): void {
  const incremental = f.raw('format') === INCREMENTAL_FORMAT;
  for (const key of ['parent', 'full']) {
    if (!incremental) {
      if (f.has(key)) throw f.bad(key, `is set on a full backup (format ${FULL_FORMAT})`);
      continue;
    }
    if (!f.has(key)) throw f.bad(key, `is missing (an incremental backup, format ${INCREMENTAL_FORMAT}, names its ${key})`);
    const other = f.string(key, 200);
    if (!isBackupName(other)) throw f.bad(key, `is ${quoteForMessage(other)}, not a backup name`);
    if (other === name) throw f.bad(key, 'is the backup itself');
  }
}

/** Whether `meta` is an incremental backup (it has a parent in its chain). */
export function isIncremental(meta: Pick<BackupMeta, 'parent'>): boolean {
  return meta.parent !== undefined;
}

function codec(f: Fields, key: string): void {
  const text = f.string(key, 16);
  if (!(CODEC_NAMES as readonly string[]).includes(text)) throw f.bad(key, `is ${quoteForMessage(text)}, not a codec gcwal knows (${CODEC_NAMES.join(', ')})`);
}
