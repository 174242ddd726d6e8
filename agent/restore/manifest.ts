/**
 * Read and check a backup's manifest (`manifest.jsonl`): streamed line by
 * line, stored bytes verified against the size and CRC32C in the backup's
 * metadata, every entry validated (paths are untrusted).
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkManifestEntry, readLines } from '../../core/backup/manifest.ts';
import { type BackupMeta, isIncremental, type ManifestEntry } from '../../core/backup/meta.ts';
import { verifyingStream } from '../../core/checksum/verify.ts';
import { codecFromName } from '../../core/codec/index.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import { Meta } from '../../core/layout.ts';
import type { Storage } from '../../core/storage/types.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';
import { backupTablespaces } from './tablespaces.ts';

/**
 * Read the manifest of `meta` into a map path → entry. Throws
 * CorruptObjectError when its stored bytes do not match the metadata, a line
 * is not a valid entry (checkManifestEntry) or lies under pg_tblspc/<oid> of
 * no tablespace of the backup, a path repeats, or the entry count differs
 * from the metadata's. Block checksums (ManifestEntry.blocks) and file
 * ranges (ManifestEntry.offset ...) are checked and dropped unless
 * `options.blocks` (a delta restore); ranges also in a manifest older than
 * format 2.
 */
export async function readManifest(
  storage: Storage,
  meta: BackupMeta,
  signal?: AbortSignal,
  options: { blocks?: boolean } = {},
): Promise<Map<string, ManifestEntry>> {
  const { key } = meta.manifest;
  const where = `manifest of backup ${meta.name}`;
  const info = await storage.stat(key, { signal });
  if (!info) throw new CorruptObjectError(`${where} (${key}) is missing`, 'the backup is incomplete or damaged; restore another backup');
  // Writers may store the manifest compressed; an object without a codec is plain.
  const codec = codecFromName(info.metadata[Meta.codec] ?? 'none', key);
  const source = await storage.read(key, { signal });
  const decoded = codec.decompressor();
  const feeding = pipeline(
    source,
    verifyingStream({ size: meta.manifest.storedSize, crc32c: meta.manifest.storedCrc32c }, `stored bytes of ${where}`),
    decoded,
    { signal },
  );
  feeding.catch(() => {}); // awaited below; errors also surface through `decoded`

  const entries = new Map<string, ManifestEntry>();
  const tablespaces = new Set(backupTablespaces(meta).map((t) => t.oid));
  let lineNo = 0;
  for await (const line of readLines(decoded as Readable, where)) {
    lineNo++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new CorruptObjectError(`${where}: line ${lineNo} is not valid json`, 'the backup manifest is damaged; restore another backup');
    }
    const entry = checkManifestEntry(value, meta.parts.length, `${where}, line ${lineNo}`, { refs: isIncremental(meta) });
    const [top, oid] = entry.path.split('/');
    if (top === 'pg_tblspc' && oid !== undefined && !tablespaces.has(oid)) {
      throw new CorruptObjectError(
        `${where}, line ${lineNo} lists ${quoteForMessage(entry.path, 200)} under pg_tblspc, but ${quoteForMessage(oid)} is not a tablespace of the backup`,
        'the backup manifest is damaged; restore another backup',
      );
    }
    if (!options.blocks) {
      delete entry.blockSize;
      delete entry.blocks;
    }
    // File ranges serve only a delta restore, and only from a manifest of the format that defines them.
    if (!options.blocks || (meta.manifest.format ?? 1) < 2) {
      delete entry.offset;
      delete entry.blockOffset;
      delete entry.storedOffset;
      delete entry.storedEnd;
    }
    if (entries.has(entry.path)) throw new CorruptObjectError(`${where} lists ${entry.path} twice`, 'the backup manifest is damaged; restore another backup');
    entries.set(entry.path, entry);
  }
  await feeding;
  if (entries.size !== meta.manifest.entries) {
    throw new CorruptObjectError(
      `${where} has ${entries.size} entries, its metadata says ${meta.manifest.entries}`,
      'the backup manifest is damaged; restore another backup',
    );
  }
  return entries;
}

/**
 * Files a restore never takes from a backup: the recovery mode of the server
 * backed up. Which recovery a restore runs is its own decision (recovery.ts
 * writes recovery.signal for --recovery and the targets). backup-push has
 * left them out since it could back up a standby, but a standby's backup
 * taken before holds standby.signal: restored as-is, it would start as a
 * standby streaming from the live primary.
 */
export const RECOVERY_SIGNALS: readonly string[] = ['standby.signal', 'recovery.signal'];

/**
 * Split the manifest read by readManifest into what a restore puts on disk
 * and the recovery signal files of the backup it leaves out. The parts still
 * hold those files: they are read and checked against the whole manifest,
 * just not written.
 */
export function withoutRecoverySignals(manifest: ReadonlyMap<string, ManifestEntry>): { restored: Map<string, ManifestEntry>; signals: string[] } {
  const restored = new Map(manifest);
  const signals = RECOVERY_SIGNALS.filter((name) => restored.delete(name));
  return { restored, signals };
}
