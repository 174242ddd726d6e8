import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { getCodec } from '../../../../core/codec/index.ts';
import { createRequire } from 'node:module';
import {
  encodeBlock,
  encodeHeader,
  endMarker,
  Flag,
  Method,
  nativeCrc32,
  parseBlockHead,
  parseHeader,
  type LzopHeader,
} from '../../../../core/codec/lzo/format.ts';
import { UsageError } from '../../../../core/errors.ts';
import { mixedData, randomData, requireTool, runThrough, runTool, splitAt } from '../helpers.ts';
import { roundTripSuite } from '../round-trip.ts';

roundTripSuite('lzo', { verifies: true });

const KiB = 1024;
const MiB = 1024 * KiB;
const codec = getCodec('lzo');

interface Layout {
  header: LzopHeader;
  /** offset of each block head */
  heads: number[];
  /** per block: stored (true) or compressed */
  stored: boolean[];
  lengths: number[];
}

/** Walk an lzop stream's structure (trusting it) to find where its blocks are. */
function layout(stream: Buffer): Layout {
  const parsed = parseHeader(stream);
  if ('need' in parsed) throw new Error('incomplete header');
  const result: Layout = { header: parsed.header, heads: [], stored: [], lengths: [] };
  let pos = parsed.size;
  for (let index = 0; ; index++) {
    const head = parseBlockHead(stream.subarray(pos), parsed.header.flags, index);
    if ('need' in head) throw new Error('incomplete block');
    if ('end' in head) return result;
    result.heads.push(pos);
    result.stored.push(head.compressedLength === head.uncompressedLength);
    result.lengths.push(head.uncompressedLength);
    pos += head.size + head.compressedLength;
  }
}

/** 3 MiB with compressible stretches and a long random one, so lzop writes both packed and stored blocks. */
const sample = Buffer.concat([mixedData(2 * MiB + 500 * KiB, 31), randomData(600 * KiB, 32)]);

test('lzo writes 256 KiB blocks, stored as they are when they do not compress', async (t) => {
  const data = Buffer.concat([Buffer.alloc(256 * KiB, 'compressible '), randomData(256 * KiB), Buffer.from('tail')]);
  const packed = await runThrough(codec.compressor(), [data]);
  const { header, stored, lengths } = layout(packed);
  t.deepEqual(lengths, [256 * KiB, 256 * KiB, 4]);
  t.deepEqual(stored, [false, true, true]);
  t.is(header.method, Method.lzo1x1);
  t.is(header.name, '');
  t.is(header.mtime, 0);
});

test('lzo checksums each block and its compressed bytes with CRC-32 when Node has a native one, else Adler-32', async (t) => {
  const { header } = layout(await runThrough(codec.compressor(), [Buffer.from('hello')]));
  t.is(header.flags, nativeCrc32 ? Flag.osUnix | Flag.crc32D | Flag.crc32C : Flag.osUnix | Flag.adler32D | Flag.adler32C);
  t.is(header.versionNeeded, 0x0940);
});

test('lzo told the checksums are recorded elsewhere writes blocks without checksums, as lzop -F does, and lzop and gcwal both restore it', async (t) => {
  const packed = await runThrough(codec.compressor(undefined, { rawChecksumRecorded: true }), [sample]);
  const { header, stored } = layout(packed);
  t.is(header.flags, Flag.osUnix);
  t.true(stored.includes(true) && stored.includes(false));
  t.true((await runThrough(codec.decompressor(), [packed])).equals(sample));
  requireTool('lzop');
  const unpacked = await runTool('lzop', ['-d', '-c'], packed);
  t.is(unpacked.code, 0, unpacked.stderr);
  t.true(unpacked.stdout.equals(sample));
});

test('lzo asked to decode natively restores the same bytes, and still refuses damage to the compressed data', async (t) => {
  const packed = await runThrough(codec.compressor(), [sample]);
  t.true((await runThrough(codec.decompressor({ native: true }), [packed])).equals(sample));
  t.true((await runThrough(codec.decompressor({ native: true, decodedVerifiedByCaller: true }), [packed])).equals(sample));
  const damaged = Buffer.from(packed);
  damaged[Math.floor(damaged.length / 2)]! ^= 0x10;
  await t.throwsAsync(runThrough(codec.decompressor({ native: true }), [damaged]), { message: /^lzo / });
});

test('lzo decompresses streams gcwal wrote with Adler-32 block checksums', async (t) => {
  // Objects archived before gcwal switched to CRC-32 carry Adler-32 of the
  // data and of the compressed bytes; they must restore forever.
  const lzo = createRequire(import.meta.url)('lzo') as { compress(b: Buffer): Buffer };
  const data = Buffer.concat([Buffer.alloc(256 * KiB, 'compressible '), randomData(100 * KiB, 34)]);
  const flags = Flag.osUnix | Flag.adler32D | Flag.adler32C;
  const header: LzopHeader = {
    version: 0x1030,
    libVersion: 0x2090,
    versionNeeded: 0x0940,
    method: Method.lzo1x1,
    level: 5,
    flags,
    filter: 0,
    mode: 0o100644,
    mtime: 0,
    name: '',
  };
  const blocks = [data.subarray(0, 256 * KiB), data.subarray(256 * KiB)].map((raw) => {
    const packed = lzo.compress(raw);
    return encodeBlock(flags, raw, packed.length < raw.length ? packed : undefined);
  });
  const stream = Buffer.concat([encodeHeader(header), ...blocks, endMarker()]);
  t.deepEqual(layout(stream).stored, [false, true]);
  t.true((await runThrough(codec.decompressor(), [stream])).equals(data));
});

test('lzo decompresses a stream split inside every block length and checksum', async (t) => {
  const data = mixedData(900 * KiB, 33);
  const packed = await runThrough(codec.compressor(), [data]);
  const { heads } = layout(packed);
  t.is(heads.length, 4);
  for (const head of heads) {
    for (const inside of [1, 2, 3, 5, 7, 9, 13, 15]) {
      const restored = await runThrough(codec.decompressor(), splitAt(packed, [head + inside]));
      t.true(restored.equals(data), `block at ${head}, split +${inside}`);
    }
  }
});

const ourSizes = [
  { name: 'an empty input', size: 0 },
  { name: 'one byte', size: 1 },
  { name: 'exactly 256 KiB', size: 256 * KiB },
  { name: '256 KiB + 1 bytes', size: 256 * KiB + 1 },
  { name: '16 MiB of mixed data', size: 16 * MiB },
];

for (const { name, size } of ourSizes) {
  test(`lzop -t accepts and lzop -d restores our compression of ${name}`, async (t) => {
    requireTool('lzop');
    const data = mixedData(size, 40 + size);
    const packed = await runThrough(codec.compressor(), [data]);
    const dir = await mkdtemp(join(tmpdir(), 'gcwal-lzo-'));
    try {
      const file = join(dir, 'object.lzo');
      await writeFile(file, packed);
      const tested = await runTool('lzop', ['-t', file]);
      t.is(tested.code, 0, tested.stderr);
      const fromFile = await runTool('lzop', ['-d', '-c', file]);
      t.is(fromFile.code, 0, fromFile.stderr);
      t.true(fromFile.stdout.equals(data));
      const fromStdin = await runTool('lzop', ['-d', '-c'], packed);
      t.is(fromStdin.code, 0, fromStdin.stderr);
      t.true(fromStdin.stdout.equals(data));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

const lzopVariants: { args: string[]; name: string; check: (h: LzopHeader) => boolean }[] = [
  { args: ['-1'], name: 'lzop -1', check: (h) => h.method === Method.lzo1x1_15 },
  { args: [], name: 'lzop at its default level', check: (h) => h.method === Method.lzo1x1 && (h.flags & Flag.adler32D) !== 0 },
  { args: ['-9'], name: 'lzop -9', check: (h) => h.method === Method.lzo1x999 },
  {
    args: ['--crc32'],
    name: 'lzop --crc32',
    check: (h) => (h.flags & (Flag.headerCrc32 | Flag.crc32D)) === (Flag.headerCrc32 | Flag.crc32D) && (h.flags & Flag.adler32D) === 0,
  },
  { args: ['-F'], name: 'lzop -F (no checksums)', check: (h) => (h.flags & (Flag.adler32D | Flag.crc32D | Flag.adler32C | Flag.crc32C)) === 0 },
  { args: ['--filter=1'], name: 'lzop --filter=1', check: (h) => h.filter === 1 },
  { args: ['--filter=7'], name: 'lzop --filter=7', check: (h) => h.filter === 7 },
  { args: ['--filter=16'], name: 'lzop --filter=16', check: (h) => h.filter === 16 },
];

for (const { args, name, check } of lzopVariants) {
  test(`lzo decompresses what ${name} writes from stdin`, async (t) => {
    requireTool('lzop');
    const made = await runTool('lzop', [...args, '-c'], sample);
    t.is(made.code, 0, made.stderr);
    const { header, stored } = layout(made.stdout);
    t.true(check(header), `header flags 0x${header.flags.toString(16)} method ${header.method}`);
    t.true((header.flags & Flag.stdin) !== 0);
    t.true(stored.includes(true) && stored.includes(false), 'both stored and compressed blocks');
    const restored = await runThrough(codec.decompressor(), [made.stdout]);
    t.true(restored.equals(sample));
  });
}

test('lzo decompresses a file lzop compressed by name, with its name, mode and time in the header', async (t) => {
  requireTool('lzop');
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-lzo-'));
  try {
    const file = join(dir, '000000010000000000000003');
    await writeFile(file, sample);
    const made = await runTool('lzop', ['-o', `${file}.lzo`, file]);
    t.is(made.code, 0, made.stderr);
    const packed = await readFile(`${file}.lzo`);
    const { header } = layout(packed);
    t.is(header.name, '000000010000000000000003');
    t.not(header.mtime, 0);
    t.is(header.mode & 0o170000, 0o100000);
    const restored = await runThrough(codec.decompressor(), [packed]);
    t.true(restored.equals(sample));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lzo refuses a compression level, having only one', (t) => {
  t.throws(() => codec.compressor(3), { instanceOf: UsageError, message: 'compression level 3 is not available for lzo' });
});
