import { crc32 as zlibCrc32 } from 'node:zlib';
import test from 'ava';
import { adler32 } from '../../../../core/codec/lzo/adler32.ts';
import {
  encodeBlock,
  encodeHeader,
  Flag,
  crc32,
  LZOP_MAGIC,
  Method,
  parseBlockHead,
  parseHeader,
  tableCrc32,
  undoFilter,
  type LzopHeader,
} from '../../../../core/codec/lzo/format.ts';
import { CorruptObjectError } from '../../../../core/errors.ts';
import { randomData, requireTool, runTool } from '../helpers.ts';

const plain: LzopHeader = {
  version: 0x1030,
  libVersion: 0x2090,
  versionNeeded: 0x0940,
  method: Method.lzo1x1,
  level: 5,
  flags: Flag.osUnix | Flag.adler32D,
  filter: 0,
  mode: 0o100644,
  mtime: 0,
  name: '',
};

const headers: { name: string; header: LzopHeader }[] = [
  { name: 'a plain header', header: plain },
  { name: 'a file name and a time past 2038', header: { ...plain, name: '000000010000000000000003', mtime: 2 ** 32 + 12345 } },
  { name: 'a filter', header: { ...plain, flags: plain.flags | Flag.filter, filter: 3, versionNeeded: 0x0950 } },
  { name: 'a crc32 header checksum', header: { ...plain, flags: Flag.osUnix | Flag.crc32D | Flag.headerCrc32, versionNeeded: 0x1001 } },
  { name: 'an extra field', header: { ...plain, flags: plain.flags | Flag.extraField, extra: Buffer.from('extra field bytes') } },
  { name: 'an empty extra field', header: { ...plain, flags: plain.flags | Flag.extraField, extra: Buffer.alloc(0) } },
];

for (const { name, header } of headers) {
  test(`an lzop header with ${name} parses back to itself`, (t) => {
    const bytes = encodeHeader(header);
    const parsed = parseHeader(Buffer.concat([bytes, Buffer.from('block data follows')]));
    if ('need' in parsed) return t.fail(`needs ${parsed.need}`);
    t.is(parsed.size, bytes.length);
    t.deepEqual(parsed.header, header);
  });

  test(`every prefix of an lzop header with ${name} asks for more bytes than it has`, (t) => {
    const bytes = encodeHeader(header);
    for (let length = 0; length < bytes.length; length++) {
      const parsed = parseHeader(bytes.subarray(0, length));
      t.true('need' in parsed && parsed.need > length && parsed.need <= bytes.length, `prefix of ${length}`);
    }
  });
}

test('the header we write is 38 bytes, as lzop writes it for a nameless file', (t) => {
  t.is(encodeHeader(plain).length, 9 + 2 + 2 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 1 + 4);
  t.true(encodeHeader(plain).subarray(0, 9).equals(LZOP_MAGIC));
});

test('an lzop header parser reads the header lzop writes', async (t) => {
  requireTool('lzop');
  const made = await runTool('lzop', ['-c', '-9'], Buffer.from('hello'));
  const parsed = parseHeader(made.stdout);
  if ('need' in parsed) return t.fail('incomplete');
  t.is(parsed.header.method, Method.lzo1x999);
  t.is(parsed.header.level, 9);
  t.is(parsed.header.flags & 0xff000000, Flag.osUnix);
  t.true((parsed.header.flags & Flag.stdin) !== 0);
  t.true(parsed.header.version >= 0x1030);
});

test('an lzop header parser reports a wrong magic byte as soon as it sees it', (t) => {
  for (let offset = 0; offset < LZOP_MAGIC.length; offset++) {
    const bytes = Buffer.from(LZOP_MAGIC.subarray(0, offset + 1));
    bytes[offset]! ^= 0xff;
    const err = t.throws(() => parseHeader(bytes), { instanceOf: CorruptObjectError });
    t.is(err?.message, 'lzo stream does not start with the lzop magic bytes');
  }
});

test('an lzop header parser reads the short layout of files older than lzop 0.94', (t) => {
  // version 0x0930: no version_needed, no level, no mtime_high
  const body = Buffer.alloc(2 + 2 + 1 + 4 + 4 + 4 + 1);
  let pos = body.writeUInt16BE(0x0930, 0);
  pos = body.writeUInt16BE(0x1000, pos);
  pos = body.writeUInt8(Method.lzo1x1, pos);
  pos = body.writeUInt32BE(Flag.adler32D, pos);
  pos = body.writeUInt32BE(0o100600, pos);
  pos = body.writeUInt32BE(1000, pos);
  body.writeUInt8(0, pos);
  const sum = Buffer.alloc(4);
  sum.writeUInt32BE(adler32(body));
  const bytes = Buffer.concat([LZOP_MAGIC, body, sum]);
  const parsed = parseHeader(bytes);
  if ('need' in parsed) return t.fail('incomplete');
  t.is(parsed.size, bytes.length);
  t.like(parsed.header, { version: 0x0930, versionNeeded: 0x0900, level: 0, mode: 0o100600, mtime: 1000 });
});

test('a block head parser asks for each field in turn and reads the checksums the flags name', (t) => {
  const flags = Flag.adler32D | Flag.crc32D | Flag.adler32C | Flag.crc32C;
  const raw = Buffer.alloc(100, 'a');
  const block = encodeBlock(flags, raw, Buffer.from('packed'));
  t.deepEqual(parseBlockHead(block.subarray(0, 3), flags, 0), { need: 4 });
  t.deepEqual(parseBlockHead(block.subarray(0, 4), flags, 0), { need: 8 });
  t.deepEqual(parseBlockHead(block.subarray(0, 8), flags, 0), { need: 24 });
  const head = parseBlockHead(block, flags, 0);
  t.like(head, { uncompressedLength: 100, compressedLength: 6, adler32D: adler32(raw), adler32C: adler32(Buffer.from('packed')), size: 24 });
  t.deepEqual(parseBlockHead(Buffer.alloc(4), flags, 0), { end: true, size: 4 });
});

test('a stored block carries no checksums of compressed data', (t) => {
  const flags = Flag.adler32D | Flag.adler32C;
  const block = encodeBlock(flags, Buffer.from('abc'), undefined);
  t.is(block.length, 8 + 4 + 3);
  t.like(parseBlockHead(block, flags, 0), { uncompressedLength: 3, compressedLength: 3, adler32C: undefined, size: 12 });
  t.throws(() => encodeBlock(flags, Buffer.from('abc'), Buffer.from('abcd')), { instanceOf: RangeError });
});

/** lzop's forward filter: subtract the byte n positions earlier, per block; blocks of at most n bytes (n > 1) untouched. */
function applyFilter(data: Buffer, n: number): Buffer {
  const out = Buffer.from(data);
  if (n > 1 && data.length <= n) return out;
  for (let i = n; i < data.length; i++) out[i] = (data[i]! - data[i - n]!) & 0xff;
  return out;
}

test('undoing an lzop filter restores the bytes it was applied to', (t) => {
  for (let n = 1; n <= 16; n++) {
    for (const length of [0, 1, n - 1, n, n + 1, 1000]) {
      if (length < 0) continue;
      const data = randomData(length, n * 100 + length);
      const filtered = applyFilter(data, n);
      if (length > n) t.false(filtered.equals(data), `filter ${n} changed ${length} bytes`);
      undoFilter(filtered, n);
      t.true(filtered.equals(data), `filter ${n}, ${length} bytes`);
    }
  }
});

test('the table CRC-32 used on Node without zlib.crc32 agrees with zlib', (t) => {
  t.is(tableCrc32(Buffer.from('123456789')), 0xcbf43926);
  t.is(tableCrc32(Buffer.alloc(0)), 0);
  for (const length of [1, 3, 255, 4096, 100_003]) {
    const data = randomData(length, length);
    t.is(tableCrc32(data), zlibCrc32(data) >>> 0, `${length} bytes`);
    t.is(crc32(data), zlibCrc32(data) >>> 0, `${length} bytes`);
  }
});

test('a block written with CRC-32 flags carries the CRC-32 of its data and of its compressed bytes', (t) => {
  const flags = Flag.crc32D | Flag.crc32C;
  const raw = Buffer.alloc(100, 'a');
  const head = parseBlockHead(encodeBlock(flags, raw, Buffer.from('packed')), flags, 0);
  t.like(head, { crc32D: zlibCrc32(raw) >>> 0, crc32C: zlibCrc32(Buffer.from('packed')) >>> 0, adler32D: undefined, adler32C: undefined, size: 16 });
});
