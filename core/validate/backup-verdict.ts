/**
 * A backup checked from its parts' verdicts (issue 15 part 2): when
 * backup.json lands, the pipeline checks backup.json and the manifest and
 * lists the backup's folder, but reads no part. Each part was read once, by
 * its own validation when it landed (validateBackupPart, a part at most
 * what the agent's GCWAL_PART_SIZE allows), which left its seal in the
 * catalogue; this gives the seal each part must have. The catalogue settles
 * the backup when the last verdict is known (core/catalogue/backup-verdicts.ts).
 * So no invocation reads more than one part, or backup.json and the manifest.
 */
import type { BackupMeta } from '../backup/meta.ts';
import { backupMetaKey, backupNameFromKey, backupPrefix, isBackupName } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { checkPartObject, checkSurvey, type BackupValidationResult } from './backup.ts';
import { backupSummary, checkBackupMeta, checkChainPresent, readBackupMeta } from './backup-meta.ts';
import { failed, resultOfError } from './decode.ts';
import { findRepeatedPath, manifestObject, repeatedPathError, surveyManifest } from './manifest.ts';
import { partSeal } from './seal.ts';
import type { ValidateOptions, WalExpectations } from './types.ts';
import { CorruptObjectError } from '../errors.ts';

/** backup.json and the manifest checked, with the seal each part must have. */
export interface BackupCheckResult extends BackupValidationResult {
  /** set when `ok`: by part index, the seal its verdict must carry (see seal.ts) */
  partSeals?: string[];
}

/**
 * Check the backup whose `backup.json` is `metaInfo` without reading its
 * parts:
 * - backup.json as validateBackup checks it (core/validate/backup.ts);
 * - one listing of its folder: every part and the manifest exist with the
 *   stored size, CRC32C and codec backup.json records;
 * - the manifest read once: every line valid, no path twice, entry, file and
 *   byte counts as recorded, overall and per part, and each part's entries
 *   digested.
 *
 * Resolves `{ ok: true, partSeals, backup }`, or `{ ok: false, problem,
 * backup? }` as validateBackup does; what the parts themselves hold is
 * decided by comparing `partSeals` with their verdicts. Rejects only with the
 * driver's errors, an abort, or a bug. Memory: the folder's listing (one
 * ObjectInfo a part), 8 bytes a manifest entry and 32 bytes a part.
 */
export async function checkBackupForVerdicts(
  storage: Storage,
  metaInfo: ObjectInfo,
  expect: WalExpectations = {},
  options: ValidateOptions = {},
): Promise<BackupCheckResult> {
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
    const listed = new Map<string, ObjectInfo>();
    for await (const info of storage.list(backupPrefix(name), { signal })) listed.set(info.key, info);
    const parts = meta.parts.map((part, i) => checkPartObject(meta, i, listed.get(part.key)));
    const where = `manifest of backup ${name}`;
    const manifestInfo = listed.get(meta.manifest.key);
    listed.clear();
    if (!manifestInfo) throw new CorruptObjectError(`${where} (${meta.manifest.key}) is missing`, 'the backup is damaged; take a new backup');
    const survey = await surveyManifest(storage, manifestObject(manifestInfo, meta, where), meta, where, signal, true);
    checkSurvey(survey, meta, where);
    const repeated = await findRepeatedPath(storage, survey, meta, where, signal);
    if (repeated !== undefined) throw repeatedPathError(repeated, where);
    const partSeals = meta.parts.map((part, i) => {
      const listing = survey.parts[i];
      return partSeal({
        generation: parts[i].generation,
        rawSize: part.rawSize,
        rawCrc32c: part.rawCrc32c,
        entries: listing.entries,
        files: listing.files,
        digest: listing.digest!.value(),
      });
    });
    return {
      ok: true,
      details: { parts: meta.parts.length, files: survey.files, entries: survey.entries, rawSize: meta.rawSize, storedSize: meta.storedSize },
      backup,
      partSeals,
    };
  } catch (err) {
    return { ...resultOfError(err, metaInfo.key, name), backup };
  }
}
