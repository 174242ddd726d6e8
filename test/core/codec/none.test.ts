import test from 'ava';
import { getCodec } from '../../../core/codec/index.ts';
import { UsageError } from '../../../core/errors.ts';
import { mixedData, randomChunks, runThrough } from './helpers.ts';
import { roundTripSuite } from './round-trip.ts';

roundTripSuite('none', { verifies: false });

const codec = getCodec('none');

test('none stores bytes exactly as they are', async (t) => {
  const data = mixedData(500_000, 80);
  t.true((await runThrough(codec.compressor(), randomChunks(data, 10_000))).equals(data));
  t.true((await runThrough(codec.decompressor(), randomChunks(data, 10_000))).equals(data));
});

test('none refuses a compression level', (t) => {
  t.throws(() => codec.compressor(1), { instanceOf: UsageError, message: 'compression level 1 is not available without compression' });
});
