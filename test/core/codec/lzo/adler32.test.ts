import test from 'ava';
import { adler32 } from '../../../../core/codec/lzo/adler32.ts';
import { randomData } from '../helpers.ts';

/** The definition, one modulo per byte. */
function reference(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const vectors: [string, number][] = [
  ['', 0x00000001],
  ['a', 0x00620062],
  ['abc', 0x024d0127],
  ['message digest', 0x29750586],
  ['Wikipedia', 0x11e60398],
  ['abcdefghijklmnopqrstuvwxyz', 0x90860b20],
];

for (const [text, expected] of vectors) {
  test(`adler32 of ${JSON.stringify(text)} is 0x${expected.toString(16).padStart(8, '0')}`, (t) => {
    t.is(adler32(Buffer.from(text)), expected);
  });
}

test('adler32 matches the definition on lengths around its reduction interval', (t) => {
  for (const length of [3799, 3800, 3801, 5552, 100_000]) {
    const random = randomData(length, length);
    t.is(adler32(random), reference(random), `random ${length}`);
    const worst = Buffer.alloc(length, 0xff);
    t.is(adler32(worst), reference(worst), `0xff x ${length}`);
  }
});

test('adler32 continues from a previous result', (t) => {
  const data = randomData(20_000, 2);
  t.is(adler32(data.subarray(7000), adler32(data.subarray(0, 7000))), adler32(data));
});
