import { once } from 'node:events';
import test from 'ava';
import { GZIP_DEFAULT_LEVEL } from '../../../core/codec/gzip.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { UsageError } from '../../../core/errors.ts';
import { assertCorrupt, mixedData, requireTool, runThrough, runTool } from './helpers.ts';
import { roundTripSuite } from './round-trip.ts';

roundTripSuite('gzip', { verifies: true });

const codec = getCodec('gzip');
const MiB = 1024 * 1024;

for (const size of [0, 1, 16 * MiB]) {
  test(`gzip -t accepts and gzip -d restores our compression of ${size} bytes`, async (t) => {
    requireTool('gzip');
    const data = mixedData(size, 70 + size);
    const packed = await runThrough(codec.compressor(), [data]);
    const tested = await runTool('gzip', ['-t'], packed);
    t.is(tested.code, 0, tested.stderr);
    const restored = await runTool('gzip', ['-d', '-c'], packed);
    t.is(restored.code, 0, restored.stderr);
    t.true(restored.stdout.equals(data));
  });
}

for (const args of [['-1'], [], ['-9']]) {
  test(`gzip decompresses what gzip ${args.join(' ') || 'at its default level'} writes`, async (t) => {
    requireTool('gzip');
    const data = mixedData(3 * MiB, 71);
    const made = await runTool('gzip', [...args, '-c'], data);
    t.is(made.code, 0, made.stderr);
    t.true((await runThrough(codec.decompressor(), [made.stdout])).equals(data));
  });
}

test('gzip decompresses concatenated members', async (t) => {
  const a = Buffer.from('first member\n');
  const b = Buffer.from('second member\n');
  const packed = Buffer.concat([await runThrough(codec.compressor(), [a]), await runThrough(codec.compressor(), [b])]);
  t.is((await runThrough(codec.decompressor(), [packed])).toString(), 'first member\nsecond member\n');
});

test('gzip applies the level it is given', async (t) => {
  const data = mixedData(2 * MiB, 72);
  const fast = (await runThrough(codec.compressor(1), [data])).length;
  const best = (await runThrough(codec.compressor(9), [data])).length;
  t.true(best < fast);
  t.is((await runThrough(codec.compressor(), [data])).length, GZIP_DEFAULT_LEVEL === 1 ? fast : best);
});

test('gzip refuses levels it does not have', (t) => {
  for (const level of [0, 10, -1, 2.5]) {
    const err = t.throws(() => codec.compressor(level), { instanceOf: UsageError }, String(level));
    t.is(err?.message, `compression level ${level} is not available for gzip`);
  }
});

test('gzip reports what is wrong with a damaged stream', async (t) => {
  const packed = await runThrough(codec.compressor(), [mixedData(100_000, 73)]);
  await assertCorrupt(t, runThrough(codec.decompressor(), []), /^gzip stream is damaged: unexpected end of file$/);
  await assertCorrupt(t, runThrough(codec.decompressor(), [packed.subarray(0, 1000)]), /^gzip stream is damaged: unexpected end of file$/);
  await assertCorrupt(t, runThrough(codec.decompressor(), [Buffer.from('not gzip')]), /^gzip stream is damaged: incorrect header check$/);
  const damaged = Buffer.from(packed);
  damaged[damaged.length - 6]! ^= 1;
  await assertCorrupt(t, runThrough(codec.decompressor(), [damaged]), /^gzip stream is damaged: incorrect data check$/);
});

test('gzip passes on unchanged the errors that are not about the data', async (t) => {
  const decompressor = codec.decompressor();
  const cause = new Error('the upload failed');
  const failed = once(decompressor, 'error');
  decompressor.destroy(cause);
  const [err] = await failed;
  t.is(err, cause);
});
