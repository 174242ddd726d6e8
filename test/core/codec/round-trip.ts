/**
 * The contract every codec honours, registered as ava tests by each codec's
 * test file: round trips of awkward sizes, decompression of input split
 * anywhere, and (for codecs that verify) rejection of damaged streams.
 */
import test from 'ava';
import { getCodec } from '../../../core/codec/index.ts';
import type { CodecName } from '../../../core/codec/types.ts';
import { assertCorrupt, chunksOf, mixedData, randomChunks, randomData, runThrough, splitAt } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

const inputs = [
  { name: 'an empty input', data: Buffer.alloc(0) },
  { name: 'one byte', data: Buffer.from([0x42]) },
  { name: 'exactly 256 KiB', data: mixedData(256 * KiB, 11) },
  { name: '256 KiB + 1 bytes', data: mixedData(256 * KiB + 1, 12) },
  { name: '16 MiB of mixed data', data: mixedData(16 * MiB, 13) },
];

/** Register the shared codec tests. `verifies`: the format detects damage (all but none). */
export function roundTripSuite(name: CodecName, options: { verifies: boolean }): void {
  const codec = getCodec(name);

  for (const { name: what, data } of inputs) {
    test(`${name} round-trips ${what} written in one chunk`, async (t) => {
      const packed = await runThrough(codec.compressor(), [data]);
      const restored = await runThrough(codec.decompressor(), [packed]);
      t.true(restored.equals(data));
    });

    test(`${name} round-trips ${what} written and read in uneven chunks`, async (t) => {
      const packed = await runThrough(codec.compressor(), randomChunks(data, 100_000, data.length));
      const restored = await runThrough(codec.decompressor(), randomChunks(packed, 70_000, packed.length + 1));
      t.true(restored.equals(data));
    });
  }

  test(`${name} decompresses small streams fed one byte at a time`, async (t) => {
    for (const data of [Buffer.alloc(0), Buffer.from('x'), mixedData(3000, 5)]) {
      const packed = await runThrough(codec.compressor(), [data]);
      const restored = await runThrough(codec.decompressor(), chunksOf(packed, 1));
      t.true(restored.equals(data), `${data.length} bytes`);
    }
  });

  test(`${name} decompresses a stream split at every offset from 0 to 60`, async (t) => {
    const data = mixedData(256 * KiB + 1, 21);
    const packed = await runThrough(codec.compressor(), [data]);
    for (let offset = 0; offset <= 60; offset++) {
      const restored = await runThrough(codec.decompressor(), splitAt(packed, [offset, offset + 1, offset + 3]));
      t.true(restored.equals(data), `split at ${offset}`);
    }
  });

  test(`${name} compresses the same input to the same bytes`, async (t) => {
    const data = mixedData(300 * KiB, 22);
    const first = await runThrough(codec.compressor(), [data]);
    const second = await runThrough(codec.compressor(), chunksOf(data, 1000));
    t.true(first.equals(second));
  });

  if (!options.verifies) return;

  test(`${name} rejects a stream cut short`, async (t) => {
    const packed = await runThrough(codec.compressor(), [mixedData(256 * KiB + 1, 23)]);
    for (const length of [0, 1, Math.floor(packed.length / 2), packed.length - 1]) {
      await assertCorrupt(t, runThrough(codec.decompressor(), [packed.subarray(0, length)]), undefined, `cut at ${length}`);
    }
  });

  test(`${name} rejects input that is not in its format`, async (t) => {
    for (const garbage of [randomData(5000, 9), Buffer.from('hello, world\n'), Buffer.alloc(100)]) {
      await assertCorrupt(t, runThrough(codec.decompressor(), [garbage]), undefined, garbage.subarray(0, 12).toString('hex'));
    }
  });

  test(`${name} rejects or exactly restores a stream with one byte changed in its data`, async (t) => {
    // Some bytes of a compressed stream do not affect the output (padding
    // bits, unused table entries), and the tools accept those changes too.
    // What must never happen is different output without an error.
    const data = mixedData(600 * KiB, 24);
    const packed = await runThrough(codec.compressor(), [data]);
    let rejected = 0;
    for (let offset = 64; offset < packed.length - 8; offset += Math.floor(packed.length / 23)) {
      const damaged = Buffer.from(packed);
      damaged[offset]! ^= 0x10;
      try {
        const restored = await runThrough(codec.decompressor(), [damaged]);
        t.true(restored.equals(data), `change at ${offset} gave different data without an error`);
      } catch (err) {
        t.is((err as { code?: string }).code, 'corrupt', `change at ${offset}: ${(err as Error).message}`);
        rejected++;
      }
    }
    t.true(rejected >= 20, `${rejected} of 23 changes rejected`);
  });
}
