/**
 * Validation of a whole backup, run when its `backup.json` lands: the
 * metadata, every part and the manifest checked against each other, each part
 * read once, with only one part's manifest entries in memory at a time.
 */
import type { BackupMeta, ManifestEntry } from '../backup/meta.ts';
import type { BackupSummaryForCatalogue } from '../catalogue/types.ts';
import { CorruptObjectError } from '../errors.ts';
import { backupMetaKey, backupNameFromKey, isBackupName, Meta } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { quoteForMessage } from '../wal/quote.ts';
import { backupSummary, checkBackupMeta, checkChainPresent, readBackupMeta } from './backup-meta.ts';
import { failed, resultOfError } from './decode.ts';
import { entriesOfPart, findRepeatedPath, manifestObject, repeatedPathError, surveyManifest, type ManifestSurvey } from './manifest.ts';
import { scanPart } from './part.ts';
import type { ValidateOptions, ValidationResult, WalExpectations } from './types.ts';

/** A backup's validation, with what the catalogue records about it. */
export interface BackupValidationResult extends ValidationResult {
  /**
   * Set whenever backup.json could be read as backup metadata, also when the
   * backup failed validation, so the catalogue can record it as corrupt.
   */
  backup?: BackupSummaryForCatalogue;
}

const hint = 'the backup is damaged; take a new backup';

function corrupt(message: string): CorruptObjectError {
  return new CorruptObjectError(message, hint);
}

/**
 * Validate the backup whose `backup.json` is `metaInfo` (as its storage event
 * or `stat` reports it):
 * - backup.json: its bytes match `metaInfo`, it parses, its fields agree with
 *   each other and with `expect` (the repository's cluster), see checkBackupMeta;
 * - every part and the manifest exist with the stored size and CRC32C it records;
 * - the manifest: every line valid, no path twice, entry, file and byte
 *   counts as recorded, overall and per part;
 * - every part, streamed through its codec: stored and decoded size and
 *   CRC32C as recorded, a complete tar stream whose entries are exactly those
 *   the manifest lists for that part, each file with the manifest's size and
 *   CRC32C.
 *
 * Resolves `{ ok: true, details, backup }` or `{ ok: false, problem, backup? }`
 * (`backup` once backup.json parsed). Rejects only with the driver's errors
 * (NotFoundError when backup.json itself is gone), an abort, or a bug.
 * Memory: one part's manifest entries and 8 bytes per manifest entry.
 */
export async function validateBackup(
  storage: Storage,
  metaInfo: ObjectInfo,
  expect: WalExpectations = {},
  options: ValidateOptions = {},
): Promise<BackupValidationResult> {
  const { signal } = options;
  const name = backupNameFromKey(metaInfo.key);
  if (name === undefined || !isBackupName(name) || metaInfo.key !== backupMetaKey(name)) return failed(`${metaInfo.key} is not the metadata of a backup`);
  let meta: BackupMeta;
  try {
    meta = await readBackupMeta(storage, metaInfo, signal);
  } catch (err) {
    return resultOfError(err, metaInfo.key);
  }
  const backup = backupSummary(meta, metaInfo.key);
  try {
    checkBackupMeta(meta, name, expect);
    await checkChainPresent(storage, meta, signal);
    const parts = await statParts(storage, meta, signal);
    const where = `manifest of backup ${name}`;
    const manifestInfo = await storage.stat(meta.manifest.key, { signal });
    if (!manifestInfo) throw corrupt(`${where} (${meta.manifest.key}) is missing`);
    const survey = await surveyManifest(storage, manifestObject(manifestInfo, meta, where), meta, where, signal);
    checkSurvey(survey, meta, where);
    const repeated = await findRepeatedPath(storage, survey, meta, where, signal);
    if (repeated !== undefined) throw repeatedPathError(repeated, where);
    for (let i = 0; i < parts.length; i++) await checkPart(storage, meta, i, parts[i], survey, signal);
    return {
      ok: true,
      details: { parts: meta.parts.length, files: survey.files, entries: survey.entries, rawSize: meta.rawSize, storedSize: meta.storedSize },
      backup,
    };
  } catch (err) {
    return { ...resultOfError(err, metaInfo.key, name), backup };
  }
}

/** Stat every part; a missing one, or one whose size or CRC32C differ from the record, is corruption. */
async function statParts(storage: Storage, meta: BackupMeta, signal?: AbortSignal): Promise<ObjectInfo[]> {
  const infos: ObjectInfo[] = [];
  for (const [i, part] of meta.parts.entries()) infos.push(checkPartObject(meta, i, await storage.stat(part.key, { signal })));
  return infos;
}

/**
 * Part `index` of `meta` as stat or a listing found it (undefined: not
 * found), held against its record: throws CorruptObjectError when it is
 * missing or its size, CRC32C or codec differ.
 */
export function checkPartObject(meta: BackupMeta, index: number, info: ObjectInfo | undefined): ObjectInfo {
  const part = meta.parts[index];
  if (!info) throw corrupt(`part ${index} (${part.key}) of backup ${meta.name} is missing`);
  if (info.size !== part.storedSize || info.crc32c !== part.storedCrc32c) {
    throw corrupt(
      `part ${index} (${part.key}) of backup ${meta.name} is ${info.size} bytes with crc32c ${info.crc32c}, but backup.json records ${part.storedSize} bytes with crc32c ${part.storedCrc32c}`,
    );
  }
  if (info.metadata[Meta.codec] !== part.codec) {
    throw corrupt(
      `part ${index} (${part.key}) of backup ${meta.name} is stored with codec ${info.metadata[Meta.codec] ?? '(none recorded)'}, but backup.json says ${part.codec}`,
    );
  }
  return info;
}

/** The manifest's counts against backup.json's. */
export function checkSurvey(survey: ManifestSurvey, meta: BackupMeta, where: string): void {
  if (survey.entries !== meta.manifest.entries) throw corrupt(`${where} has ${survey.entries} entries, backup.json says ${meta.manifest.entries}`);
  if (survey.files !== meta.fileCount) throw corrupt(`${where} lists ${survey.files} files, backup.json says ${meta.fileCount}`);
  if (survey.fileBytes !== meta.rawSize) throw corrupt(`${where} lists ${survey.fileBytes} bytes of files, backup.json says ${meta.rawSize}`);
  meta.parts.forEach((part, i) => {
    if (survey.parts[i].files !== part.files) throw corrupt(`${where} lists ${survey.parts[i].files} files in part ${i}, backup.json says ${part.files}`);
  });
}

/** Read part `index` and hold it against its manifest entries and its record in backup.json. */
async function checkPart(storage: Storage, meta: BackupMeta, index: number, info: ObjectInfo, survey: ManifestSurvey, signal?: AbortSignal): Promise<void> {
  const part = meta.parts[index];
  const where = `part ${index} (${part.key}) of backup ${meta.name}`;
  const manifestWhere = `manifest of backup ${meta.name}`;
  const expected = new Map<string, { entry: ManifestEntry; seen: boolean }>();
  for await (const entry of entriesOfPart(storage, survey, meta, index, manifestWhere, signal)) {
    if (expected.has(entry.path)) throw repeatedPathError(entry.path, manifestWhere);
    expected.set(entry.path, { entry, seen: false });
  }
  if (expected.size !== survey.parts[index].entries) {
    throw corrupt(`${manifestWhere} lists ${expected.size} entries for part ${index} when read again, ${survey.parts[index].entries} the first time`);
  }
  const scan = await scanPart(
    storage,
    info,
    where,
    (found) => {
      const name = quoteForMessage(found.path, 200);
      const listed = expected.get(found.path);
      if (!listed) throw corrupt(`${name} in ${where} is not in the manifest for this part`);
      if (listed.seen) throw corrupt(`${name} appears twice in ${where}`);
      listed.seen = true;
      const { entry } = listed;
      if (found.type !== entry.type) throw corrupt(`${name} in ${where} is a ${found.type}, but the manifest lists a ${entry.type}`);
      if (entry.type !== 'file') return;
      if (found.size !== entry.size) throw corrupt(`${name} in ${where} holds ${found.size} bytes, but the manifest says ${entry.size}`);
      if (found.crc32c !== entry.crc32c) throw corrupt(`${name} in ${where} has crc32c ${found.crc32c}, but the manifest says ${entry.crc32c}`);
    },
    { hashFiles: true, signal },
  );
  const missing = [...expected.values()].filter((v) => !v.seen);
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` and ${missing.length - 1} more` : '';
    throw corrupt(`the manifest lists ${quoteForMessage(missing[0].entry.path, 200)}${more} in ${where}, which does not hold it`);
  }
  if (scan.files !== part.files) throw corrupt(`${where} holds ${scan.files} files, backup.json says ${part.files}`);
  if (scan.rawSize !== part.rawSize || scan.rawCrc32c !== part.rawCrc32c) {
    throw corrupt(
      `${where} decodes to ${scan.rawSize} bytes with crc32c ${scan.rawCrc32c}, but backup.json records ${part.rawSize} bytes with crc32c ${part.rawCrc32c}`,
    );
  }
}
