import test from 'ava';
import { getCodec } from '../../../../core/codec/index.ts';
import { encodeBlock, encodeHeader, endMarker, Flag, Method, parseHeader, type LzopHeader } from '../../../../core/codec/lzo/format.ts';
import { adler32 } from '../../../../core/codec/lzo/adler32.ts';
import { assertCorrupt, chunksOf, mixedData, randomData, requireTool, runThrough, runTool } from '../helpers.ts';

const KiB = 1024;
const codec = getCodec('lzo');

/** A compressed 256 KiB block and a stored 1000-byte one: every byte is covered by some check. */
const small = Buffer.concat([Buffer.alloc(256 * KiB, 'SELECT 1; '), randomData(1000, 51)]);
const smallPacked = await runThrough(codec.compressor(), [small]);

const baseHeader: LzopHeader = {
  version: 0x1040,
  libVersion: 0x20a0,
  versionNeeded: 0x0940,
  method: Method.lzo1x1,
  level: 5,
  flags: Flag.osUnix | Flag.adler32D,
  filter: 0,
  mode: 0o100644,
  mtime: 0,
  name: '',
};

test('lzo restores the two-block sample the damage tests start from', async (t) => {
  t.true((await runThrough(codec.decompressor(), [smallPacked])).equals(small));
});

test('lzo rejects every single-bit flip anywhere in a stream', async (t) => {
  for (let offset = 0; offset < smallPacked.length; offset++) {
    const damaged = Buffer.from(smallPacked);
    damaged[offset]! ^= 0x01;
    await assertCorrupt(t, runThrough(codec.decompressor(), [damaged]), undefined, `flip at ${offset}`);
  }
});

test('lzo rejects every truncation of a stream as empty or truncated', async (t) => {
  for (let length = 0; length < smallPacked.length; length++) {
    await assertCorrupt(t, runThrough(codec.decompressor(), [smallPacked.subarray(0, length)]), /^lzo stream is (empty|truncated)/, `cut at ${length}`);
  }
});

test('lzo names where a stream was cut', async (t) => {
  const cases: [number, RegExp][] = [
    [0, /^lzo stream is empty$/],
    [20, /^lzo stream is truncated inside its header \(20 bytes\)$/],
    [40, /^lzo stream is truncated inside block 0$/],
    [smallPacked.length - 4, /^lzo stream is truncated: it ends after block 1 without the end marker$/],
  ];
  for (const [length, message] of cases) {
    await assertCorrupt(t, runThrough(codec.decompressor(), [smallPacked.subarray(0, length)]), message);
  }
  const headerOnly = encodeHeader(baseHeader);
  await assertCorrupt(t, runThrough(codec.decompressor(), [headerOnly]), /ends after its header without the end marker$/);
});

test('lzo rejects every single-byte change in the header lzop writes for a named file', async (t) => {
  requireTool('lzop');
  const made = await runTool('lzop', ['-c', '-N'], Buffer.from('hello'));
  t.is(made.code, 0, made.stderr);
  const parsed = parseHeader(made.stdout);
  if ('need' in parsed) return t.fail('lzop wrote an incomplete header');
  for (let offset = 0; offset < parsed.size; offset++) {
    const damaged = Buffer.from(made.stdout);
    damaged[offset]! ^= 0x04;
    await assertCorrupt(t, runThrough(codec.decompressor(), [damaged]), /magic|header/, `change at ${offset}`);
  }
});

test('lzo rejects or exactly restores damage the decoder meets in files without checksums of compressed data', async (t) => {
  // lzop's default: Adler-32 of the uncompressed data only, so damaged
  // compressed bytes reach the decoder, which either fails or produces
  // data the checksum then rejects. A few bytes of an LZO1X stream do not
  // affect its output (lzop -t accepts those changes too); the one thing that
  // must never happen is different output without an error.
  requireTool('lzop');
  const data = mixedData(600 * KiB, 52);
  const made = await runTool('lzop', ['-c'], data);
  const parsed = parseHeader(made.stdout);
  if ('need' in parsed) return t.fail('lzop wrote an incomplete header');
  const messages = new Set<string>();
  for (let offset = parsed.size + 40; offset < made.stdout.length - 8; offset += 997) {
    const damaged = Buffer.from(made.stdout);
    damaged[offset]! ^= 0x5a;
    try {
      const restored = await runThrough(codec.decompressor(), [damaged]);
      t.true(restored.equals(data), `change at ${offset} gave different data without an error`);
    } catch (err) {
      t.is((err as { code?: string }).code, 'corrupt', (err as Error).message);
      messages.add(
        (err as Error).message
          .replace(/\d+/g, 'N')
          .replace(/\(stored .*\)/, '')
          .trim(),
      );
    }
  }
  t.true(
    [...messages].some((m) => m === 'lzo block N does not decode: failed to decompress'),
    [...messages].join('; '),
  );
  t.true(
    [...messages].some((m) => m === 'lzo block N fails its adlerN check of uncompressed data'),
    [...messages].join('; '),
  );
  // the codec replaced the wasm module the failures discarded and still works
  t.true((await runThrough(codec.decompressor(), [made.stdout])).equals(data));
});

test('lzo streams sharing a codec are unaffected by another stream failing to decode', async (t) => {
  const shared = getCodec('lzo');
  const data = mixedData(2 * 1024 * KiB, 53);
  const packed = await runThrough(shared.compressor(), [data]);
  const undecodable = stream(baseHeader, rawBlock(1000, 10, [1], Buffer.alloc(10, 0xff)));
  const [restored, ...failures] = await Promise.allSettled([
    runThrough(shared.decompressor(), chunksOf(packed, 4 * KiB)),
    ...Array.from({ length: 20 }, () => runThrough(shared.decompressor(), chunksOf(undecodable, 7))),
  ]);
  t.is(restored!.status, 'fulfilled', restored!.status === 'rejected' ? String(restored!.reason) : '');
  t.true(restored!.status === 'fulfilled' && restored!.value.equals(data));
  for (const failure of failures) t.is(failure.status === 'rejected' && (failure.reason as { code?: string }).code, 'corrupt');
});

test('lzo rejects data after the end marker', async (t) => {
  for (const extra of [Buffer.from([0]), Buffer.from('garbage'), smallPacked]) {
    await assertCorrupt(t, runThrough(codec.decompressor(), [Buffer.concat([smallPacked, extra])]), /trailing data after its end marker$/);
  }
});

test('lzo rejects input that is not lzop from its first byte', async (t) => {
  const gzip = Buffer.from('1f8b0800000000000003', 'hex');
  for (const garbage of [Buffer.from('x'), Buffer.from('not an lzop file'), gzip, Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0b])]) {
    await assertCorrupt(t, runThrough(codec.decompressor(), [garbage]), /^lzo stream does not start with the lzop magic bytes$/);
  }
});

/** A stream with `header` and `blocks` (already encoded) and the end marker. */
const stream = (header: LzopHeader, ...blocks: Buffer[]) => Buffer.concat([encodeHeader(header), ...blocks, endMarker()]);

/** A block head with any lengths, and data, for lengths encodeBlock would refuse. */
function rawBlock(uncompressed: number, compressed: number, sums: number[], data: Buffer): Buffer {
  const head = Buffer.alloc(8 + 4 * sums.length);
  head.writeUInt32BE(uncompressed, 0);
  head.writeUInt32BE(compressed, 4);
  sums.forEach((sum, i) => head.writeUInt32BE(sum, 8 + 4 * i));
  return Buffer.concat([head, data]);
}

const crafted: { name: string; input: Buffer; message: RegExp }[] = [
  {
    name: 'a method that is not lzo1x',
    input: stream({ ...baseHeader, method: 0x1a }),
    message: /^lzo header names compression method 26, which is not lzo1x$/,
  },
  { name: 'a level above 9', input: stream({ ...baseHeader, level: 12 }), message: /^lzo header has compression level 12, outside 1-9$/ },
  {
    name: 'flags lzop never defined',
    input: stream({ ...baseHeader, flags: baseHeader.flags | 0x4000 }),
    message: /^lzo header has unknown flags 0x00004000$/,
  },
  { name: 'a newer format version', input: stream({ ...baseHeader, versionNeeded: 0x2000 }), message: /^lzo stream needs lzop 0x2000 to extract/ },
  {
    name: 'an undefined filter',
    input: stream({ ...baseHeader, flags: baseHeader.flags | Flag.filter, filter: 17 }),
    message: /^lzo header names filter 17; lzop defines filters 1-16$/,
  },
  {
    name: 'a damaged extra field',
    input: (() => {
      const s = stream({ ...baseHeader, flags: baseHeader.flags | Flag.extraField, extra: Buffer.from('extra') });
      s[s.length - 4 - 6]! ^= 1;
      return s;
    })(),
    message: /^lzo header extra field checksum 0x[0-9a-f]{8} does not match its contents/,
  },
  {
    name: 'an extra field too large to buffer',
    input: (() => {
      // the header with an empty extra field, whose length is then replaced
      const header = encodeHeader({ ...baseHeader, flags: baseHeader.flags | Flag.extraField }).subarray(0, -8);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(0x7fffffff);
      return Buffer.concat([header, length]);
    })(),
    message: /^lzo header extra field of 2147483647 bytes is larger than 1048576$/,
  },
  {
    name: 'a block over the format limit of 64 MiB',
    input: stream(baseHeader, rawBlock(64 * 1024 * KiB + 1, 10, [1], Buffer.alloc(10))),
    message: /^lzo block 0 claims 67108865 uncompressed bytes, more than the 67108864 lzop allows$/,
  },
  {
    name: 'more compressed bytes than uncompressed',
    input: stream(baseHeader, rawBlock(10, 11, [1], Buffer.alloc(11))),
    message: /^lzo block 0 claims 11 compressed bytes for 10 uncompressed ones$/,
  },
  {
    name: 'a block of no compressed bytes',
    input: stream(baseHeader, rawBlock(10, 0, [1], Buffer.alloc(0))),
    message: /^lzo block 0 claims 0 compressed bytes for 10 uncompressed ones$/,
  },
  {
    name: 'a compressed block larger than the decoder takes',
    input: stream(baseHeader, rawBlock(16 * 1024 * KiB, 100, [1], Buffer.alloc(100))),
    message: /^lzo block 0 holds 16777216 bytes; gcwal decodes blocks of up to 8388608/,
  },
  {
    name: 'compressed bytes that do not decode',
    input: stream(baseHeader, rawBlock(1000, 10, [1], Buffer.alloc(10, 0xff))),
    message: /^lzo block 0 does not decode: failed to decompress$/,
  },
  {
    name: 'a stored block whose checksum fails',
    input: stream(baseHeader, rawBlock(5, 5, [adler32(Buffer.from('hellp'))], Buffer.from('hello'))),
    message: /^lzo block 0 fails its adler32 check of uncompressed data/,
  },
  {
    name: 'a second block whose crc32 of compressed data fails',
    input: (() => {
      const flags = Flag.osUnix | Flag.crc32D | Flag.crc32C | Flag.headerCrc32;
      const raw = Buffer.alloc(1000, 'a');
      const good = encodeBlock(flags, Buffer.from('b'), undefined);
      const bad = encodeBlock(flags, raw, Buffer.from([0x11, 0x00, 0x00]));
      bad[8 + 4]! ^= 0x80;
      return stream({ ...baseHeader, flags, versionNeeded: 0x1001 }, good, bad);
    })(),
    message: /^lzo block 1 fails its crc32 check of compressed data/,
  },
];

for (const { name, input, message } of crafted) {
  test(`lzo rejects a stream with ${name}`, async (t) => {
    await assertCorrupt(t, runThrough(codec.decompressor(), [input]), message);
  });
}

test('with the decoded bytes checked by the caller, a wrong checksum of the uncompressed data is left to the caller while one of the compressed data still fails', async (t) => {
  const parsed = parseHeader(smallPacked);
  if (!('header' in parsed)) return t.fail('header not parsed');
  t.true((parsed.header.flags & Flag.crc32D) !== 0 && (parsed.header.flags & Flag.crc32C) !== 0, 'gcwal writes both block checksums');
  // Block 0: uncompressed length, compressed length, CRC-32 of the uncompressed data, CRC-32 of the compressed data.
  const checkOfRaw = parsed.size + 8;
  const checkOfCompressed = parsed.size + 12;
  const rawWrong = Buffer.from(smallPacked);
  rawWrong[checkOfRaw]! ^= 0x01;
  await assertCorrupt(t, runThrough(codec.decompressor(), [rawWrong]), /^lzo block 0 fails its crc32 check of uncompressed data/);
  t.true((await runThrough(codec.decompressor({ decodedVerifiedByCaller: true }), [rawWrong])).equals(small));
  const compressedWrong = Buffer.from(smallPacked);
  compressedWrong[checkOfCompressed]! ^= 0x01;
  await assertCorrupt(
    t,
    runThrough(codec.decompressor({ decodedVerifiedByCaller: true }), [compressedWrong]),
    /^lzo block 0 fails its crc32 check of compressed data/,
  );
});
