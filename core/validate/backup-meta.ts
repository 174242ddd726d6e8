/**
 * A backup's `backup.json` as validation reads it: its bytes checked against
 * the object that triggered validation, then its fields against each other
 * and the repository, before any part is read.
 */
import { pipeline } from 'node:stream';
import { parseBackupMeta, type BackupMeta } from '../backup/meta.ts';
import type { BackupSummaryForCatalogue } from '../catalogue/types.ts';
import { verifyingStream } from '../checksum/verify.ts';
import { isCodecName } from '../codec/index.ts';
import { CorruptObjectError } from '../errors.ts';
import { backupManifestKey, backupMetaKey, backupNameFromKey, backupPartKey, backupPrefix } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { parseLsn } from '../wal/lsn.ts';
import { isValidSegmentSize, parseWalSegmentName, segmentNumberOfEndLsn, segmentNumberOfLsn } from '../wal/name.ts';
import type { WalExpectations } from './types.ts';

/** Largest backup.json read (as backup-list): a multi-terabyte backup's list of parts fits easily. */
export const BACKUP_META_LIMIT = 16 * 1024 * 1024;

const hint = 'the backup metadata is damaged or does not belong here; take a new backup';

/**
 * Read and parse `info` (a backup.json). Throws CorruptObjectError when it is
 * larger than BACKUP_META_LIMIT, its bytes differ from `info`'s size and
 * CRC32C, or it is not backup metadata; the driver's errors as they are.
 */
export async function readBackupMeta(storage: Storage, info: ObjectInfo, signal?: AbortSignal): Promise<BackupMeta> {
  if (info.size > BACKUP_META_LIMIT)
    throw new CorruptObjectError(`${info.key} is ${info.size} bytes, more than backup metadata ever is (${BACKUP_META_LIMIT})`, hint);
  // The callback form destroys the verifier with a read error too, so the loop sees it.
  const stream = pipeline(
    await storage.read(info.key, { signal }),
    verifyingStream({ size: info.size, crc32c: info.crc32c }, `stored bytes of ${info.key}`),
    () => {},
  );
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return parseBackupMeta(Buffer.concat(chunks).toString('utf8'), info.key);
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Check what backup.json says against itself, its folder `name` and the
 * repository's cluster: the name, cluster and segment size; each part's key,
 * sizes, checksums and codec; the totals; the manifest key; the LSNs against
 * their segments and the backup label. Throws CorruptObjectError (or
 * InvalidInputError for a malformed LSN or segment name) on the first fault.
 */
export function checkBackupMeta(meta: BackupMeta, name: string, expect: WalExpectations): void {
  const where = backupMetaKey(name);
  const bad = (why: string) => new CorruptObjectError(`${where} ${why}`, hint);
  if (meta.name !== name) throw bad(`names backup ${meta.name}`);
  if (expect.systemIdentifier !== undefined && meta.systemIdentifier !== expect.systemIdentifier) {
    throw bad(`is a backup of cluster ${meta.systemIdentifier}, not of the repository's cluster ${expect.systemIdentifier}`);
  }
  if (!isValidSegmentSize(meta.walSegmentSize)) throw bad(`gives invalid segment size ${meta.walSegmentSize}`);
  if (expect.walSegmentSize !== undefined && meta.walSegmentSize !== expect.walSegmentSize) {
    throw bad(`records ${meta.walSegmentSize}-byte segments, but the repository's are ${expect.walSegmentSize} bytes`);
  }
  if (meta.parts.length === 0) throw bad('lists no parts');
  meta.parts.forEach((part, i) => {
    if (part.key !== backupPartKey(name, i)) throw bad(`lists part ${i} as ${JSON.stringify(part.key)}, not ${backupPartKey(name, i)}`);
    if (
      !isCount(part.rawSize) ||
      !isCount(part.storedSize) ||
      !isCount(part.files) ||
      typeof part.rawCrc32c !== 'string' ||
      typeof part.storedCrc32c !== 'string'
    ) {
      throw bad(`lacks sizes, checksums or a file count for part ${i}`);
    }
    if (!isCodecName(part.codec)) throw bad(`gives part ${i} unknown codec ${JSON.stringify(part.codec)}`);
  });
  const storedSize = meta.parts.reduce((n, p) => n + p.storedSize, 0);
  if (meta.storedSize !== storedSize) throw bad(`records ${meta.storedSize} stored bytes, but its parts add up to ${storedSize}`);
  const files = meta.parts.reduce((n, p) => n + p.files, 0);
  if (meta.fileCount !== files) throw bad(`records ${meta.fileCount} files, but its parts hold ${files}`);
  if (meta.manifest.key !== backupManifestKey(name)) throw bad(`names manifest ${JSON.stringify(meta.manifest.key)}, not ${backupManifestKey(name)}`);
  if (!isCount(meta.manifest.entries) || !isCount(meta.manifest.storedSize) || typeof meta.manifest.storedCrc32c !== 'string')
    throw bad("lacks the manifest's size, checksum or entry count");

  const startLsn = parseLsn(meta.startLsn);
  const stopLsn = parseLsn(meta.stopLsn);
  if (stopLsn < startLsn) throw bad(`stops at ${meta.stopLsn}, before it starts at ${meta.startLsn}`);
  if (parseWalSegmentName(meta.startWalSegment, meta.walSegmentSize).segNo !== segmentNumberOfLsn(startLsn, meta.walSegmentSize)) {
    throw bad(`starts at ${meta.startLsn}, which is not in its start segment ${meta.startWalSegment}`);
  }
  const stop = parseWalSegmentName(meta.stopWalSegment, meta.walSegmentSize);
  if (stopLsn > 0n && stop.segNo !== segmentNumberOfEndLsn(stopLsn, meta.walSegmentSize)) {
    throw bad(`stops at ${meta.stopLsn}, which does not end in its stop segment ${meta.stopWalSegment}`);
  }
  if (stop.timeline !== meta.timeline) throw bad(`gives timeline ${meta.timeline}, but its stop segment is ${meta.stopWalSegment}`);
  if (typeof meta.backupLabel !== 'string' || !meta.backupLabel.split('\n').includes(`START WAL LOCATION: ${meta.startLsn} (file ${meta.startWalSegment})`)) {
    throw bad(`holds a backup label that does not start at ${meta.startLsn} in ${meta.startWalSegment}`);
  }
}

/**
 * An incremental backup restores only with its chain: throws
 * CorruptObjectError when the backup.json of its parent or of its full
 * backup is not in the repository. (Whether they are valid is their own
 * validation's verdict; retention and restore combine them.)
 */
export async function checkChainPresent(storage: Storage, meta: BackupMeta, signal?: AbortSignal): Promise<void> {
  const needed: [string, string | undefined][] = [
    ['parent', meta.parent],
    ['full backup', meta.full],
  ];
  for (const [what, name] of needed) {
    if (name === undefined || (await storage.stat(backupMetaKey(name), { signal }))) continue;
    throw new CorruptObjectError(
      `backup ${meta.name} is incremental, but its ${what} ${name} is missing from the repository`,
      'the chain is broken: this backup cannot be restored; take a full backup',
    );
  }
}

/**
 * What the catalogue keeps about the backup: its identity, range, sizes and
 * the object keys deleting it removes: those backup.json lists, but only
 * inside its own folder (a damaged or hostile backup.json must not lead
 * retention to other objects), and backup.json itself (`metaKey`).
 */
export function backupSummary(meta: BackupMeta, metaKey: string): BackupSummaryForCatalogue {
  const folder = backupPrefix(backupNameFromKey(metaKey) ?? '');
  const listed: unknown[] = [...(Array.isArray(meta.parts) ? meta.parts.map((p) => p?.key) : []), meta.manifest?.key];
  const keys = [...listed.filter((k): k is string => typeof k === 'string' && k.startsWith(folder) && k !== folder), metaKey];
  return {
    name: meta.name,
    systemIdentifier: meta.systemIdentifier,
    pgVersionNum: meta.pgVersionNum,
    timeline: meta.timeline,
    startLsn: meta.startLsn,
    stopLsn: meta.stopLsn,
    startWalSegment: meta.startWalSegment,
    stopWalSegment: meta.stopWalSegment,
    startTime: meta.startTime,
    stopTime: meta.stopTime,
    rawSize: meta.rawSize,
    storedSize: meta.storedSize,
    ...(meta.parent !== undefined ? { parent: meta.parent } : {}),
    keys: [...new Set(keys)],
  };
}
