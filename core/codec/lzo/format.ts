/**
 * The lzop file format (what `lzop` writes and `lzop -d` reads), as pure
 * functions over buffers: header and block encoding, incremental header and
 * block-head parsing, and lzop's delta filters. No I/O and no LZO here; the
 * streams in lzop.ts drive these.
 *
 * Layout (all integers big-endian):
 *   magic 89 4C 5A 4F 00 0D 0A 1A 0A
 *   header: version u16, lib_version u16, [version_needed u16], method u8,
 *     [level u8], flags u32, [filter u32 if F_H_FILTER], mode u32,
 *     mtime_low u32, [mtime_high u32], name_len u8, name, checksum u32
 *     ([..] present when version >= 0x0940; the checksum is Adler-32 of the
 *     header after the magic, or CRC-32 when F_H_CRC32)
 *   [extra field if F_H_EXTRA_FIELD: len u32, data, checksum u32 of len+data]
 *   blocks: uncompressed_len u32 (0 ends the stream), compressed_len u32,
 *     [adler32 of uncompressed], [crc32 of uncompressed],
 *     [adler32 of compressed], [crc32 of compressed] (the last two only when
 *     compressed_len < uncompressed_len; equal lengths mean a stored block),
 *     data
 */
import * as zlib from 'node:zlib';
import { CorruptObjectError } from '../../errors.ts';
import { adler32 } from './adler32.ts';

/**
 * Native CRC-32 (`zlib.crc32`, Node 20.15+ and 22.2+), or undefined on an
 * older Node. A namespace import, not `import { crc32 }`: a named import of
 * an export the running Node lacks fails the whole bundle at link time.
 */
export const nativeCrc32: ((data: Uint8Array) => number) | undefined = typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined;

/** The reflected CRC-32 table (polynomial 0xEDB88320), for Node versions without zlib.crc32. */
const CRC32_TABLE: Readonly<Int32Array> = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 in JavaScript, a byte at a time: only for reading CRC-32 streams on a Node without zlib.crc32. */
export function tableCrc32(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * CRC-32 (ISO-HDLC, as zlib and lzop compute it) of `data`, unsigned: native
 * when this Node has it, a table-driven loop otherwise.
 */
export function crc32(data: Uint8Array): number {
  return nativeCrc32 ? nativeCrc32(data) >>> 0 : tableCrc32(data);
}

export const LZOP_MAGIC: Readonly<Buffer> = Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Header flag bits, as lzop names them (F_ADLER32_D ...). */
export const Flag = {
  adler32D: 0x0001,
  adler32C: 0x0002,
  stdin: 0x0004,
  stdout: 0x0008,
  nameDefault: 0x0010,
  dosish: 0x0020,
  extraField: 0x0040,
  gmtDiff: 0x0080,
  crc32D: 0x0100,
  crc32C: 0x0200,
  multipart: 0x0400,
  filter: 0x0800,
  headerCrc32: 0x1000,
  path: 0x2000,
  /** operating system byte: Unix */
  osUnix: 0x03000000,
} as const;

/** Bits lzop has never assigned (outside F_MASK, the OS byte and the charset nibble). */
const RESERVED_FLAGS = 0x000fc000;

/** Compression methods of the LZO1X family; all decode with the same LZO1X decoder. */
export const Method = { lzo1x1: 1, lzo1x1_15: 2, lzo1x999: 3 } as const;

/** Blocks lzop writes: 256 KiB of uncompressed data (its decoder refuses larger ones). */
export const LZOP_BLOCK_SIZE = 256 * 1024;

/** The format's limit on a block's uncompressed length. */
export const LZOP_MAX_BLOCK_SIZE = 64 * 1024 * 1024;

/** Newest `version_needed_to_extract` this reader understands (lzop 1.04's format). */
export const LZOP_READER_VERSION = 0x1040;

/** No writer uses the extra field; a bound keeps a corrupt length from buffering gigabytes. */
export const MAX_EXTRA_FIELD = 1024 * 1024;

/** A parsed (or to-be-written) lzop header. */
export interface LzopHeader {
  version: number;
  libVersion: number;
  /** version_needed_to_extract; 0x0900 for files older than 0.94, which lack it */
  versionNeeded: number;
  method: number;
  level: number;
  flags: number;
  /** lzop delta filter 1-16, 0 for none */
  filter: number;
  mode: number;
  /** seconds since the epoch */
  mtime: number;
  /** original file name, latin1, at most 255 bytes */
  name: string;
  /** contents of the extra field when F_H_EXTRA_FIELD is set */
  extra?: Buffer;
}

/** `{ need }`: the parse needs at least this many bytes from the start of the stream. */
export type Parse<T> = T | { need: number };

function headerChecksum(flags: number, bytes: Uint8Array): number {
  return flags & Flag.headerCrc32 ? crc32(bytes) : adler32(bytes);
}

const hex = (value: number, digits = 8): string => `0x${value.toString(16).padStart(digits, '0')}`;

/** Serialise a header (magic included). Throws RangeError on a name over 255 bytes. */
export function encodeHeader(h: LzopHeader): Buffer {
  const name = Buffer.from(h.name, 'latin1');
  if (name.length > 255) throw new RangeError('lzop file name longer than 255 bytes');
  const withFilter = (h.flags & Flag.filter) !== 0;
  const body = Buffer.alloc(2 + 2 + 2 + 1 + 1 + 4 + (withFilter ? 4 : 0) + 4 + 4 + 4 + 1 + name.length);
  let pos = 0;
  pos = body.writeUInt16BE(h.version, pos);
  pos = body.writeUInt16BE(h.libVersion, pos);
  pos = body.writeUInt16BE(h.versionNeeded, pos);
  pos = body.writeUInt8(h.method, pos);
  pos = body.writeUInt8(h.level, pos);
  pos = body.writeUInt32BE(h.flags >>> 0, pos);
  if (withFilter) pos = body.writeUInt32BE(h.filter, pos);
  pos = body.writeUInt32BE(h.mode, pos);
  pos = body.writeUInt32BE(h.mtime % 2 ** 32, pos);
  pos = body.writeUInt32BE(Math.floor(h.mtime / 2 ** 32), pos);
  pos = body.writeUInt8(name.length, pos);
  name.copy(body, pos);
  const checksum = Buffer.alloc(4);
  checksum.writeUInt32BE(headerChecksum(h.flags, body));
  const parts = [LZOP_MAGIC, body, checksum];
  if (h.flags & Flag.extraField) {
    const extra = h.extra ?? Buffer.alloc(0);
    const field = Buffer.alloc(4 + extra.length + 4);
    field.writeUInt32BE(extra.length, 0);
    extra.copy(field, 4);
    field.writeUInt32BE(headerChecksum(h.flags, field.subarray(0, 4 + extra.length)), 4 + extra.length);
    parts.push(field);
  }
  return Buffer.concat(parts);
}

/**
 * Parse the header at the start of `buf`, which holds the first bytes of the
 * stream (all of them so far). Returns the header and its length in bytes
 * (magic and extra field included), or `{ need }` when `buf` is too short to
 * decide. Throws CorruptObjectError as soon as the bytes cannot be an lzop
 * header: a wrong magic byte is reported from the first byte on.
 */
export function parseHeader(buf: Buffer): Parse<{ header: LzopHeader; size: number }> {
  const magicBytes = Math.min(buf.length, LZOP_MAGIC.length);
  if (!buf.subarray(0, magicBytes).equals(LZOP_MAGIC.subarray(0, magicBytes))) {
    throw new CorruptObjectError('lzo stream does not start with the lzop magic bytes');
  }
  let pos = LZOP_MAGIC.length;
  if (buf.length < pos + 2) return { need: pos + 2 };
  const version = buf.readUInt16BE(pos);
  // Files from lzop < 0.94 lack version_needed, level and mtime_high.
  const modern = version >= 0x0940;
  const fixed = 2 + 2 + (modern ? 3 : 1) + (modern ? 1 : 0) + 4;
  if (buf.length < pos + fixed) return { need: pos + fixed };
  pos += 2;
  const libVersion = buf.readUInt16BE(pos);
  pos += 2;
  let versionNeeded = 0x0900;
  if (modern) {
    versionNeeded = buf.readUInt16BE(pos);
    pos += 2;
  }
  const method = buf.readUInt8(pos++);
  const level = modern ? buf.readUInt8(pos++) : 0;
  const flags = buf.readUInt32BE(pos);
  pos += 4;
  const variable = (flags & Flag.filter ? 4 : 0) + 4 + 4 + (modern ? 4 : 0) + 1;
  if (buf.length < pos + variable) return { need: pos + variable };
  let filter = 0;
  if (flags & Flag.filter) {
    filter = buf.readUInt32BE(pos);
    pos += 4;
  }
  const mode = buf.readUInt32BE(pos);
  const mtimeLow = buf.readUInt32BE(pos + 4);
  pos += 8;
  const mtimeHigh = modern ? buf.readUInt32BE(pos) : 0;
  if (modern) pos += 4;
  const nameLength = buf.readUInt8(pos++);
  if (buf.length < pos + nameLength + 4) return { need: pos + nameLength + 4 };
  const name = buf.toString('latin1', pos, pos + nameLength);
  pos += nameLength;
  const stored = buf.readUInt32BE(pos);
  const computed = headerChecksum(flags, buf.subarray(LZOP_MAGIC.length, pos));
  pos += 4;
  if (stored !== computed) {
    throw new CorruptObjectError(`lzo header checksum ${hex(stored)} does not match its contents (${hex(computed)})`);
  }
  // Checked only once the checksum vouches for the bytes, so a damaged header
  // is reported as damaged rather than as a strange but valid one.
  if (version < 0x0900) throw new CorruptObjectError(`lzo header has version ${hex(version, 4)}, older than any lzop release`);
  if (versionNeeded > LZOP_READER_VERSION) {
    throw new CorruptObjectError(
      `lzo stream needs lzop ${hex(versionNeeded, 4)} to extract; this reader knows up to ${hex(LZOP_READER_VERSION, 4)}`,
      'decompress it with a newer lzop',
    );
  }
  if (versionNeeded < 0x0900) throw new CorruptObjectError(`lzo header needs version ${hex(versionNeeded, 4)}, older than any lzop release`);
  if (method !== Method.lzo1x1 && method !== Method.lzo1x1_15 && method !== Method.lzo1x999) {
    throw new CorruptObjectError(
      `lzo header names compression method ${method}, which is not lzo1x`,
      'the file needs an lzop built with other libraries; decompress it with that lzop',
    );
  }
  if (level > 9) throw new CorruptObjectError(`lzo header has compression level ${level}, outside 1-9`);
  if (flags & RESERVED_FLAGS) throw new CorruptObjectError(`lzo header has unknown flags ${hex(flags & RESERVED_FLAGS)}`);
  if (flags & Flag.filter && (filter < 1 || filter > 16)) {
    throw new CorruptObjectError(`lzo header names filter ${filter}; lzop defines filters 1-16`);
  }
  const header: LzopHeader = { version, libVersion, versionNeeded, method, level, flags, filter, mode, mtime: mtimeHigh * 2 ** 32 + mtimeLow, name };
  if (flags & Flag.extraField) {
    if (buf.length < pos + 4) return { need: pos + 4 };
    const length = buf.readUInt32BE(pos);
    if (length > MAX_EXTRA_FIELD) throw new CorruptObjectError(`lzo header extra field of ${length} bytes is larger than ${MAX_EXTRA_FIELD}`);
    if (buf.length < pos + 4 + length + 4) return { need: pos + 4 + length + 4 };
    const storedExtra = buf.readUInt32BE(pos + 4 + length);
    const computedExtra = headerChecksum(flags, buf.subarray(pos, pos + 4 + length));
    if (storedExtra !== computedExtra) {
      throw new CorruptObjectError(`lzo header extra field checksum ${hex(storedExtra)} does not match its contents (${hex(computedExtra)})`);
    }
    header.extra = Buffer.from(buf.subarray(pos + 4, pos + 4 + length));
    pos += 4 + length + 4;
  }
  return { header, size: pos };
}

/** The head of one block: lengths and the checksums the header's flags call for. */
export interface BlockHead {
  uncompressedLength: number;
  /** equal to uncompressedLength for a stored (incompressible) block */
  compressedLength: number;
  adler32D?: number;
  crc32D?: number;
  adler32C?: number;
  crc32C?: number;
  /** bytes the head occupies; the data follows */
  size: number;
}

/**
 * Parse the block head (or the end marker) at the start of `buf`. `index`
 * (0-based) only names the block in messages. Returns `{ end: true }` for the
 * 4 zero bytes that end the stream, `{ need }` when `buf` is too short, and
 * throws CorruptObjectError on impossible lengths.
 */
export function parseBlockHead(buf: Buffer, flags: number, index: number): Parse<BlockHead | { end: true; size: 4 }> {
  if (buf.length < 4) return { need: 4 };
  const uncompressedLength = buf.readUInt32BE(0);
  if (uncompressedLength === 0) return { end: true, size: 4 };
  if (uncompressedLength > LZOP_MAX_BLOCK_SIZE) {
    throw new CorruptObjectError(`lzo block ${index} claims ${uncompressedLength} uncompressed bytes, more than the ${LZOP_MAX_BLOCK_SIZE} lzop allows`);
  }
  if (buf.length < 8) return { need: 8 };
  const compressedLength = buf.readUInt32BE(4);
  if (compressedLength === 0 || compressedLength > uncompressedLength) {
    throw new CorruptObjectError(`lzo block ${index} claims ${compressedLength} compressed bytes for ${uncompressedLength} uncompressed ones`);
  }
  const packed = compressedLength < uncompressedLength;
  const fields: (keyof BlockHead)[] = [];
  if (flags & Flag.adler32D) fields.push('adler32D');
  if (flags & Flag.crc32D) fields.push('crc32D');
  if (packed && flags & Flag.adler32C) fields.push('adler32C');
  if (packed && flags & Flag.crc32C) fields.push('crc32C');
  const size = 8 + 4 * fields.length;
  if (buf.length < size) return { need: size };
  const head: BlockHead = { uncompressedLength, compressedLength, size };
  fields.forEach((field, i) => (head[field] = buf.readUInt32BE(8 + 4 * i)));
  return head;
}

/** Bytes of a block's head (lengths and the checksums `flags` calls for) before its data. */
export function blockHeadLength(flags: number, packed: boolean): number {
  let sums = 0;
  if (flags & Flag.adler32D) sums++;
  if (flags & Flag.crc32D) sums++;
  if (packed && flags & Flag.adler32C) sums++;
  if (packed && flags & Flag.crc32C) sums++;
  return 8 + 4 * sums;
}

/**
 * Write the head of one block into `target` at `offset` (blockHeadLength
 * bytes): the lengths and the checksums `flags` calls for, of `raw` and, for
 * a packed block, of `packed`. The data itself is the caller's to place
 * right after it.
 */
export function writeBlockHead(target: Buffer, offset: number, flags: number, raw: Buffer, packed: Buffer | undefined): void {
  if (packed && packed.length >= raw.length) throw new RangeError('a packed lzop block must be shorter than its data');
  const sums: number[] = [];
  if (flags & Flag.adler32D) sums.push(adler32(raw));
  if (flags & Flag.crc32D) sums.push(crc32(raw));
  if (packed && flags & Flag.adler32C) sums.push(adler32(packed));
  if (packed && flags & Flag.crc32C) sums.push(crc32(packed));
  target.writeUInt32BE(raw.length, offset);
  target.writeUInt32BE((packed ?? raw).length, offset + 4);
  sums.forEach((sum, i) => target.writeUInt32BE(sum, offset + 8 + 4 * i));
}

/**
 * Serialise one block with the checksums `flags` calls for. `packed` is the
 * LZO1X-compressed form of `raw`, or undefined to store `raw` as is; lzop
 * stores a block whenever compressing it does not make it smaller, and so
 * must the caller (a packed block must be shorter than raw).
 */
export function encodeBlock(flags: number, raw: Buffer, packed: Buffer | undefined): Buffer {
  const data = packed ?? raw;
  const head = blockHeadLength(flags, packed !== undefined);
  const out = Buffer.allocUnsafe(head + data.length);
  writeBlockHead(out, 0, flags, raw, packed);
  data.copy(out, head);
  return out;
}

/** The 4 zero bytes after the last block. */
export function endMarker(): Buffer {
  return Buffer.alloc(4);
}

/**
 * Undo lzop's delta filter `n` (1-16) in place: lzop subtracted from each
 * byte the byte `n` positions earlier in the same block before compressing.
 * Like lzop, filters other than 1 leave blocks of at most `n` bytes alone.
 */
export function undoFilter(data: Buffer, n: number): void {
  if (n > 1 && data.length <= n) return;
  for (let i = n; i < data.length; i++) data[i] = (data[i]! + data[i - n]!) & 0xff;
}
