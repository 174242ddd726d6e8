/**
 * Read and check a backup's manifest (`manifest.jsonl`): streamed line by
 * line, stored bytes verified against the size and CRC32C in the backup's
 * metadata, every entry validated (paths are untrusted).
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import { verifyingStream } from '../../core/checksum/verify.ts';
import { codecFromName } from '../../core/codec/index.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import { Meta } from '../../core/layout.ts';
import type { Storage } from '../../core/storage/types.ts';
import { checkBackupPath } from './paths.ts';

/** Longest manifest line accepted: a path is at most a few KiB; this bounds memory on a damaged manifest. */
const MAX_LINE = 1024 * 1024;

/**
 * Split a byte stream into UTF-8 lines (without the newline); a last line
 * without newline counts. Throws CorruptObjectError naming `where` when a
 * line exceeds `maxLine` characters.
 */
export async function* readLines(stream: AsyncIterable<Buffer | string>, where: string, maxLine = MAX_LINE): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream) {
    rest += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
    if (rest.length > maxLine) throw new CorruptObjectError(`${where} has a line longer than ${maxLine} characters`, 'the backup manifest is damaged; restore another backup');
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}

const TYPES = new Set(['file', 'directory', 'symlink']);

/**
 * Check one parsed manifest line. Throws CorruptObjectError naming `where`
 * unless it is a well-formed entry with a safe path; files must carry a
 * CRC32C and a part index below `partCount`.
 */
export function checkManifestEntry(value: unknown, partCount: number, where: string): ManifestEntry {
  const e = value as Partial<ManifestEntry> | null;
  const bad = (why: string) => new CorruptObjectError(`${where}: ${why}`, 'the backup manifest is damaged; restore another backup');
  if (typeof e !== 'object' || e === null || typeof e.path !== 'string') throw bad('an entry without a path');
  const p = checkBackupPath(e.path, where);
  if (!TYPES.has(e.type as string)) throw bad(`${p} has an unknown type`);
  if (!Number.isSafeInteger(e.mode) || (e.mode as number) < 0) throw bad(`${p} has no valid mode`);
  if (e.type === 'file') {
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) throw bad(`${p} has no valid size`);
    if (typeof e.crc32c !== 'string') throw bad(`${p} has no crc32c`);
    if (!Number.isSafeInteger(e.part) || (e.part as number) < 0 || (e.part as number) >= partCount) throw bad(`${p} names part ${e.part}, which does not exist`);
    if (typeof e.mtime !== 'string' || Number.isNaN(Date.parse(e.mtime))) throw bad(`${p} has no valid mtime`);
  }
  return { ...(e as ManifestEntry), path: p };
}

/**
 * Read the manifest of `meta` into a map path → entry. Throws
 * CorruptObjectError when its stored bytes do not match the metadata, a line
 * is not a valid entry, a path repeats, or the entry count differs from the
 * metadata's.
 */
export async function readManifest(storage: Storage, meta: BackupMeta, signal?: AbortSignal): Promise<Map<string, ManifestEntry>> {
  const { key } = meta.manifest;
  const where = `manifest of backup ${meta.name}`;
  const info = await storage.stat(key, { signal });
  if (!info) throw new CorruptObjectError(`${where} (${key}) is missing`, 'the backup is incomplete or damaged; restore another backup');
  // Writers may store the manifest compressed; an object without a codec is plain.
  const codec = codecFromName(info.metadata[Meta.codec] ?? 'none', key);
  const source = await storage.read(key, { signal });
  const decoded = codec.decompressor();
  const feeding = pipeline(source, verifyingStream({ size: meta.manifest.storedSize, crc32c: meta.manifest.storedCrc32c }, `stored bytes of ${where}`), decoded, { signal });
  feeding.catch(() => {}); // awaited below; errors also surface through `decoded`

  const entries = new Map<string, ManifestEntry>();
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
    const entry = checkManifestEntry(value, meta.parts.length, `${where}, line ${lineNo}`);
    if (entries.has(entry.path)) throw new CorruptObjectError(`${where} lists ${entry.path} twice`, 'the backup manifest is damaged; restore another backup');
    entries.set(entry.path, entry);
  }
  await feeding;
  if (entries.size !== meta.manifest.entries) {
    throw new CorruptObjectError(`${where} has ${entries.size} entries, its metadata says ${meta.manifest.entries}`, 'the backup manifest is damaged; restore another backup');
  }
  return entries;
}
