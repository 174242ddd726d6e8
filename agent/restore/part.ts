/**
 * Restore one stored part: read it from the repository, verify the stored
 * bytes, decompress, verify the raw tar bytes, and unpack — one streaming
 * pass, nothing buffered beyond stream high-water marks, no temporary copy.
 */
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupPart } from '../../core/backup/meta.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import { verifyingStream } from '../../core/checksum/verify.ts';
import { codecFromName } from '../../core/codec/index.ts';
import type { Storage } from '../../core/storage/types.ts';
import { type ExtractResult, type ExtractTarget, extractPart, type PartLedger } from './extract.ts';
import { restorePartRanges } from './ranges.ts';

/**
 * Stream part `index` (described by `part`) from `storage` onto disk.
 * Throws CorruptObjectError when the stored or raw bytes do not match the
 * part's sizes and CRC32Cs, the codec rejects them, the tar is malformed, an
 * entry does not match the manifest, or the part holds a different number of
 * files than recorded. Everything it wrote is verified once it returns;
 * `ledger` records what it changed, for undoAttempt when it fails.
 */
export async function restorePart(
  storage: Storage,
  part: BackupPart,
  index: number,
  target: ExtractTarget,
  ledger: PartLedger,
  signal?: AbortSignal,
): Promise<ExtractResult> {
  if (target.skipParts?.has(index)) return { files: 0, bytes: 0 };
  const ranged = target.ranged?.get(index);
  if (ranged) return restorePartRanges(storage, part, index, ranged, target, ledger, signal);
  const codec = codecFromName(part.codec, part.key);
  const stored = await storage.read(part.key, { signal });
  const raw = new PassThrough();
  const feeding = pipeline(
    stored,
    verifyingStream({ size: part.storedSize, crc32c: part.storedCrc32c }, `stored bytes of ${part.key}`),
    // The raw bytes are checked right after against the part's own CRC32C.
    codec.decompressor({ decodedVerifiedByCaller: true, native: true }),
    verifyingStream({ size: part.rawSize, crc32c: part.rawCrc32c }, `decompressed bytes of ${part.key}`),
    raw,
    { signal },
  );
  // A failing stage destroys `raw` with its error, so extractPart sees it too;
  // this handler only keeps the rejection from going unhandled meanwhile.
  feeding.catch(() => {});
  let result: ExtractResult;
  try {
    result = await extractPart(raw, index, target, ledger, signal);
    await feeding;
  } catch (err) {
    // Codec errors know nothing of backups: say which part they came from.
    if (err instanceof CorruptObjectError && !err.message.includes(target.backupName)) {
      throw new CorruptObjectError(`part ${index} (${part.key}) of backup ${target.backupName}: ${err.message}`, err.hint, { cause: err });
    }
    throw err;
  } finally {
    raw.destroy();
  }
  if (result.files !== part.files) {
    throw new CorruptObjectError(
      `part ${index} of backup ${target.backupName} holds ${result.files} files, its metadata says ${part.files}`,
      'the backup is damaged; restore another backup',
    );
  }
  return result;
}
