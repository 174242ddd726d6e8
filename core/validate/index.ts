/**
 * Validation of what the repository holds, as the pipeline's `validate`
 * function runs it on each object that lands. Runs on a plain Node runtime:
 * nothing here needs a native addon except decoding zstd objects, which
 * reports `details.decoderUnavailable` when zstd-napi does not load.
 */
export { validateBackup, type BackupValidationResult } from './backup.ts';
export { checkBackupForVerdicts, type BackupCheckResult } from './backup-verdict.ts';
export { validateBackupPart } from './part.ts';
export type { ValidateOptions, ValidationResult, WalExpectations } from './types.ts';
export { validateWalObject, WAL_TEXT_LIMIT } from './wal.ts';
export { recordFactsOf } from './wal-records.ts';
