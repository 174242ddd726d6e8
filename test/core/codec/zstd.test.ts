import test from 'ava';
import { getCodec } from '../../../core/codec/index.ts';
import { ZSTD_DEFAULT_LEVEL } from '../../../core/codec/zstd.ts';
import { UsageError } from '../../../core/errors.ts';
import { assertCorrupt, mixedData, requireTool, runThrough, runTool } from './helpers.ts';
import { roundTripSuite } from './round-trip.ts';

roundTripSuite('zstd', { verifies: true });

const codec = getCodec('zstd');
const MiB = 1024 * 1024;

for (const size of [0, 1, 16 * MiB]) {
  test(`zstd -t accepts and zstd -d restores our compression of ${size} bytes`, async (t) => {
    requireTool('zstd');
    const data = mixedData(size, 60 + size);
    const packed = await runThrough(codec.compressor(), [data]);
    const tested = await runTool('zstd', ['-t', '-q'], packed);
    t.is(tested.code, 0, tested.stderr);
    const restored = await runTool('zstd', ['-d', '-c', '-q'], packed);
    t.is(restored.code, 0, restored.stderr);
    t.true(restored.stdout.equals(data));
  });
}

for (const args of [[], ['-19'], ['--fast=3'], ['--no-check'], ['-T2', '-10']]) {
  test(`zstd decompresses what zstd ${args.join(' ') || 'at its default level'} writes`, async (t) => {
    requireTool('zstd');
    const data = mixedData(3 * MiB, 61);
    const made = await runTool('zstd', [...args, '-c', '-q'], data);
    t.is(made.code, 0, made.stderr);
    t.true((await runThrough(codec.decompressor(), [made.stdout])).equals(data));
  });
}

test('zstd decompresses concatenated frames', async (t) => {
  const a = mixedData(100_000, 62);
  const b = mixedData(100_000, 63);
  const packed = Buffer.concat([await runThrough(codec.compressor(), [a]), await runThrough(codec.compressor(), [b])]);
  t.true((await runThrough(codec.decompressor(), [packed])).equals(Buffer.concat([a, b])));
});

test('zstd frames we write carry a content checksum', async (t) => {
  const packed = await runThrough(codec.compressor(), [Buffer.from('hello')]);
  t.is(packed.readUInt32LE(0), 0xfd2fb528);
  // frame header descriptor, bit 2: Content_Checksum_flag
  t.is(packed[4]! & 0x04, 0x04);
});

test('zstd applies the level it is given', async (t) => {
  const data = mixedData(2 * MiB, 64);
  const size = async (level?: number) => (await runThrough(codec.compressor(level), [data])).length;
  const [fastest, standard, best, unspecified] = [await size(-7), await size(ZSTD_DEFAULT_LEVEL), await size(19), await size()];
  t.true(fastest > standard);
  t.true(best < standard);
  t.is(unspecified, standard);
});

test('zstd refuses levels it does not have', (t) => {
  for (const level of [-8, 23, 1.5, Number.NaN]) {
    const err = t.throws(() => codec.compressor(level), { instanceOf: UsageError }, String(level));
    t.is(err?.message, `compression level ${level} is not available for zstd`);
  }
});

test('zstd reports what is wrong with a damaged stream', async (t) => {
  const packed = await runThrough(codec.compressor(), [mixedData(100_000, 65)]);
  await assertCorrupt(t, runThrough(codec.decompressor(), []), /^zstd stream is empty$/);
  await assertCorrupt(
    t,
    runThrough(codec.decompressor(), [packed.subarray(0, 1000)]),
    /^zstd stream is damaged: stream ended in middle of compressed data frame$/,
  );
  await assertCorrupt(
    t,
    runThrough(codec.decompressor(), [Buffer.concat([packed, Buffer.from('trailing garbage')])]),
    /^zstd stream is damaged: unknown frame descriptor$/,
  );
  const damaged = Buffer.from(packed);
  damaged[damaged.length - 2]! ^= 1;
  await assertCorrupt(t, runThrough(codec.decompressor(), [damaged]), /^zstd stream is damaged: .*checksum/);
});
