/**
 * Validation of one data part of a backup (`backups/<name>/part_NNNNN.tar`):
 * decoded through its codec and read as a tar stream to its end.
 */
import { pipeline } from 'node:stream';
import { ChecksumMeter } from '../checksum/crc32c.ts';
import { CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { failed, openDecodedObject, resultOfError } from './decode.ts';
import { EntriesDigest, partSeal } from './seal.ts';
import { scanTar, type TarEntryFacts, type TarScan } from './tar.ts';
import type { ValidateOptions, ValidationResult } from './types.ts';

/** A part read to its end: the tar's totals and the decoded bytes' size and CRC32C. */
export interface PartScan extends TarScan {
  rawSize: number;
  /** base64 (GCS style) */
  rawCrc32c: string;
}

/**
 * Stream part `info` through stored-bytes verification, its codec and the
 * tar parser, calling `onEntry` per entry (see scanTar; `hashFiles` computes
 * each file's CRC32C). `where` names the part in messages, and is put
 * before those that do not name it. Rejects like openDecodedObject and scanTar.
 */
export async function scanPart(
  storage: Storage,
  info: ObjectInfo,
  where: string,
  onEntry: (entry: TarEntryFacts) => void,
  options: { hashFiles: boolean; signal?: AbortSignal },
): Promise<PartScan> {
  try {
    const decoded = await openDecodedObject(storage, info, options.signal);
    const meter = new ChecksumMeter();
    const scan = await scanTar(
      pipeline(decoded, meter, () => {}),
      where,
      onEntry,
      options,
    );
    return { ...scan, rawSize: meter.bytes, rawCrc32c: meter.base64 };
  } catch (err) {
    // Codec errors know nothing of parts: say which one they came from.
    if (err instanceof CorruptObjectError && !err.message.includes(info.key)) {
      throw new CorruptObjectError(`${where}: ${err.message}`, err.hint, { cause: err });
    }
    throw err;
  }
}

/**
 * Validate the part `info` on its own (as its storage event reports it): the
 * stored bytes must match `info`'s size and CRC32C, decode with the codec its
 * metadata names, and form a complete tar stream with safe paths; when its
 * metadata records a raw size and CRC32C (gcwal records them in backup.json
 * instead), the decoded bytes must match them. Each file's CRC32C is computed
 * on the way, so the result carries the part's verdict for its backup:
 * `details.seal` (see seal.ts), what backup.json and the manifest must agree
 * with. Resolves `{ ok: true, rawSize, rawCrc32c, details: { entries, files,
 * fileBytes, digest, seal } }` or `{ ok: false, problem }`.
 * Rejects only with the driver's errors, an abort, or a bug.
 */
export async function validateBackupPart(storage: Storage, info: ObjectInfo, options: ValidateOptions = {}): Promise<ValidationResult> {
  try {
    const digest = new EntriesDigest();
    const scan = await scanPart(storage, info, info.key, (entry) => digest.add(entry), { hashFiles: true, signal: options.signal });
    const details: Record<string, unknown> = { entries: scan.entries, files: scan.files, fileBytes: scan.fileBytes };
    const recordedSize = info.metadata[Meta.rawSize];
    const recordedCrc = info.metadata[Meta.rawCrc32c];
    if (recordedSize !== undefined && Number(recordedSize) !== scan.rawSize) {
      return failed(`${info.key} decodes to ${scan.rawSize} bytes, but its metadata records ${recordedSize}`, details);
    }
    if (recordedCrc !== undefined && recordedCrc !== scan.rawCrc32c) {
      return failed(`${info.key} decodes to bytes with crc32c ${scan.rawCrc32c}, but its metadata records ${recordedCrc}`, details);
    }
    details.digest = digest.value();
    details.seal = partSeal({
      generation: info.generation,
      rawSize: scan.rawSize,
      rawCrc32c: scan.rawCrc32c,
      entries: scan.entries,
      files: scan.files,
      digest: details.digest as string,
    });
    return { ok: true, rawSize: scan.rawSize, rawCrc32c: scan.rawCrc32c, details };
  } catch (err) {
    return resultOfError(err, info.key);
  }
}
