/**
 * Lines of a backup's manifest (`manifest.jsonl`, see ManifestEntry): how
 * they are split and what makes one valid. Shared by restore, which reads
 * the whole manifest, and validation, which reads it a part at a time.
 */
import { StringDecoder } from 'node:string_decoder';
import { CorruptObjectError } from '../errors.ts';
import type { ManifestEntry } from './meta.ts';
import { quoteForMessage } from '../wal/quote.ts';
import { CRC32C_BASE64, Fields, isoTime } from './fields.ts';
import { checkBackupPath, isTablespaceOid } from './paths.ts';
import { isBackupName } from '../layout.ts';
import { blockCount, decodeBlockCrcs, MAX_BLOCKS, MIN_BLOCK_SIZE } from '../checksum/blocks.ts';

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
    if (rest.length > maxLine)
      throw new CorruptObjectError(`${where} has a line longer than ${maxLine} characters`, 'the backup manifest is damaged; restore another backup');
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}

const TYPES: readonly string[] = ['file', 'directory', 'symlink'];
/** Where a file lies in its part (ManifestEntry.offset and the others, agent/backup/offsets.ts): all four or none. */
const RANGE_FIELDS = ['offset', 'blockOffset', 'storedOffset', 'storedEnd'] as const;
const ENTRY_SHAPE = {
  required: ['path', 'type', 'size', 'mode', 'mtime'],
  optional: ['crc32c', 'part', 'ref', 'target', 'blockSize', 'blocks', ...RANGE_FIELDS],
};

/**
 * Check one parsed manifest line strictly. Throws CorruptObjectError naming
 * `where` and the field unless it is a well-formed entry: only the fields of
 * the format, a safe path, a known type, a mode of at most 0o7777, an ISO
 * mtime; files with a size, a CRC32C and either a part index below
 * `partCount` or (an incremental backup's file stored in an older backup,
 * allowed only with `options.refs`) the name of that backup in `ref`;
 * directories and links with size 0 and no CRC32C; links only as
 * `pg_tblspc/<oid>` (a tablespace), their target (never used: restore links
 * to the directory the user chose) a string when present.
 */
export function checkManifestEntry(value: unknown, partCount: number, where: string, options: { refs?: boolean } = {}): ManifestEntry {
  const hint = 'the backup manifest is damaged; restore another backup';
  const path =
    typeof value === 'object' && value !== null && typeof (value as { path?: unknown }).path === 'string' ? (value as { path: string }).path : undefined;
  if (path === undefined) throw new CorruptObjectError(`${where}: an entry without a path`, hint);
  const p = checkBackupPath(path, where);
  const f = Fields.of(value, '', ENTRY_SHAPE, (field, why) => new CorruptObjectError(`${where}: ${p} has ${field} that ${why}`, hint));
  const type = f.string('type', 16);
  if (!TYPES.includes(type)) throw f.bad('type', `is ${quoteForMessage(type)}, an unknown type`);
  f.integer('mode', 0, 0o7777);
  isoTime(f, 'mtime');
  if (f.has('part')) {
    const part = f.integer('part', 0);
    if (part >= partCount) throw f.bad('part', `is ${part}, a part the backup does not have (it has ${partCount})`);
  }
  if (type === 'file') {
    f.count('size');
    if (!f.has('crc32c')) throw f.bad('crc32c', 'is missing');
    f.matching('crc32c', CRC32C_BASE64, 'a base64 crc32c');
    if (f.has('ref')) {
      if (!options.refs) throw f.bad('ref', 'is set in a full backup (only an incremental backup refers to another)');
      const ref = f.string('ref', 200);
      if (!isBackupName(ref)) throw f.bad('ref', `is ${quoteForMessage(ref)}, not a backup name`);
      if (f.has('part')) throw f.bad('part', 'is set on a file stored in another backup (ref)');
    } else if (!f.has('part')) throw f.bad('part', 'is missing');
    if (f.has('blockSize') || f.has('blocks')) {
      const blockSize = f.integer('blockSize', MIN_BLOCK_SIZE, 2 ** 30);
      if ((blockSize & (blockSize - 1)) !== 0) throw f.bad('blockSize', `is ${blockSize}, not a power of two`);
      const count = blockCount(f.count('size'), blockSize);
      if (count > MAX_BLOCKS) throw f.bad('blockSize', `is ${blockSize}, which makes more than ${MAX_BLOCKS} blocks`);
      if (!f.has('blocks')) throw f.bad('blocks', 'is missing');
      if (decodeBlockCrcs(f.string('blocks', MAX_MANIFEST_LINE), count) === undefined) throw f.bad('blocks', `is not the base64 of ${count} block checksums`);
    }
    const ranged = RANGE_FIELDS.filter((k) => f.has(k));
    if (ranged.length > 0) {
      const absent = RANGE_FIELDS.find((k) => !f.has(k));
      if (absent) throw f.bad(absent, `is missing (${ranged.join(', ')} set)`);
      if (f.count('size') === 0) throw f.bad('offset', 'is set on an empty file');
      if (f.count('blockOffset') > f.count('offset')) throw f.bad('blockOffset', `is ${f.raw('blockOffset')}, after offset ${f.raw('offset')}`);
      if (f.count('storedEnd') <= f.count('storedOffset'))
        throw f.bad('storedEnd', `is ${f.raw('storedEnd')}, not after storedOffset ${f.raw('storedOffset')}`);
    }
  } else {
    f.integer('size', 0, 0);
    if (f.has('crc32c')) throw f.bad('crc32c', `is set on a ${type}`);
    if (f.has('ref')) throw f.bad('ref', `is set on a ${type}`);
    if (f.has('blockSize') || f.has('blocks')) throw f.bad(f.has('blocks') ? 'blocks' : 'blockSize', `is set on a ${type}`);
    const ranged = RANGE_FIELDS.find((k) => f.has(k));
    if (ranged) throw f.bad(ranged, `is set on a ${type}`);
  }
  if (type === 'symlink') {
    const parts = p.split('/');
    if (parts.length !== 2 || parts[0] !== 'pg_tblspc' || !isTablespaceOid(parts[1]))
      throw f.bad('type', 'is symlink outside pg_tblspc/<oid> (only tablespace links are part of a backup)');
    if (f.has('target')) f.string('target');
  } else if (f.has('target')) {
    throw f.bad('target', `is set on a ${type}`);
  }
  return { ...(value as ManifestEntry), path: p };
}
