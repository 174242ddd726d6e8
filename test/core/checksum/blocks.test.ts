import test from 'ava';
import { BlockChecksums, blockSizeFor, crc32cCombine, decodeBlockCrcs, encodeBlockCrcs, MAX_BLOCKS, MIN_BLOCK_SIZE } from '../../../core/checksum/blocks.ts';
import { crc32c } from '../../../core/checksum/crc32c.ts';
import { randomChunks, randomData } from '../codec/helpers.ts';

test('crc32cCombine gives the crc32c of two buffers one after the other', (t) => {
  const data = randomData(70_001, 7);
  for (const cut of [0, 1, 8191, 8192, 40_000, 70_000, 70_001]) {
    const a = data.subarray(0, cut);
    const b = data.subarray(cut);
    t.is(crc32cCombine(crc32c(a), crc32c(b), b.length), crc32c(data), `cut at ${cut}`);
  }
});

test('block checksums are the crc32c of each block, whatever the chunking, and give the whole crc32c', (t) => {
  const size = 5 * MIN_BLOCK_SIZE + 1234;
  const data = randomData(size, 11);
  const expected = Array.from({ length: 6 }, (_, i) => crc32c(data.subarray(i * MIN_BLOCK_SIZE, (i + 1) * MIN_BLOCK_SIZE)));
  for (const seed of [1, 2, 3]) {
    const sums = new BlockChecksums(size);
    for (const chunk of randomChunks(data, 20_000, seed)) sums.update(chunk);
    t.is(sums.finish(), crc32c(data));
    t.deepEqual([...sums.crcs], expected);
  }
  const whole = new BlockChecksums(size);
  whole.update(data);
  t.is(whole.finish(), crc32c(data));
});

test('a file of exactly whole blocks has no empty last block', (t) => {
  const data = randomData(3 * MIN_BLOCK_SIZE, 5);
  const sums = new BlockChecksums(data.length);
  sums.update(data);
  t.is(sums.finish(), crc32c(data));
  t.is(sums.crcs.length, 3);
});

test('the block size doubles past the most blocks a manifest line holds', (t) => {
  t.is(blockSizeFor(1024 ** 3), MIN_BLOCK_SIZE);
  t.is(blockSizeFor(1024 ** 3 + 1), 2 * MIN_BLOCK_SIZE);
  t.true(Math.ceil((5 * 1024 ** 3) / blockSizeFor(5 * 1024 ** 3)) <= MAX_BLOCKS);
});

test('block checksums round-trip through their base64 form, and a damaged one is refused', (t) => {
  const crcs = Uint32Array.from([0, 1, 0xffffffff, 0x12345678, 42]);
  const text = encodeBlockCrcs(crcs);
  t.deepEqual(decodeBlockCrcs(text, 5), crcs);
  t.is(decodeBlockCrcs(text, 4), undefined);
  t.is(decodeBlockCrcs(text.slice(1), 5), undefined);
  t.is(decodeBlockCrcs('!' + text.slice(1), 5), undefined);
});
