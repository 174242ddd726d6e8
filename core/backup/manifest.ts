/**
 * Lines of a backup's manifest (`manifest.jsonl`, see ManifestEntry): how
 * they are split and what makes one valid. Shared by restore, which reads
 * the whole manifest, and validation, which reads it a part at a time.
 */
import { StringDecoder } from 'node:string_decoder';
import { CorruptObjectError } from '../errors.ts';
import type { ManifestEntry } from './meta.ts';
import { checkBackupPath } from './paths.ts';

/** Longest manifest line accepted: a path is at most a few KiB; this bounds memory on a damaged manifest. */
export const MAX_MANIFEST_LINE = 1024 * 1024;

/**
 * Split a byte stream into UTF-8 lines (without the newline); a last line
 * without newline counts. Throws CorruptObjectError naming `where` when a
 * line exceeds `maxLine` characters.
 */
export async function* readLines(stream: AsyncIterable<Buffer | string>, where: string, maxLine = MAX_MANIFEST_LINE): AsyncGenerator<string> {
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
