import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import test from 'ava';
import { createRequire } from 'node:module';
import { ChecksumMeter, crc32c, crc32cBase64, loadCrc32c } from '../../../core/checksum/crc32c.ts';
import { randomData, randomChunks } from '../codec/helpers.ts';

// RFC 3720 (iSCSI) appendix B.4 and the common check value
const vectors: { name: string; data: Buffer; crc: number; base64: string }[] = [
  { name: 'no bytes', data: Buffer.alloc(0), crc: 0x00000000, base64: 'AAAAAA==' },
  { name: '"123456789"', data: Buffer.from('123456789'), crc: 0xe3069283, base64: '4waSgw==' },
  { name: '32 zero bytes', data: Buffer.alloc(32), crc: 0x8a9136aa, base64: 'ipE2qg==' },
  { name: '32 0xff bytes', data: Buffer.alloc(32, 0xff), crc: 0x62a8ab43, base64: 'YqirQw==' },
  { name: 'bytes 0 to 31', data: Buffer.from(Array.from({ length: 32 }, (_, i) => i)), crc: 0x46dd794e, base64: 'Rt15Tg==' },
  { name: 'bytes 31 down to 0', data: Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), crc: 0x113fdb5c, base64: 'ET/bXA==' },
];

for (const { name, data, crc, base64 } of vectors) {
  test(`crc32c of ${name} is 0x${crc.toString(16).padStart(8, '0')}, ${base64} as GCS writes it`, (t) => {
    t.is(crc32c(data), crc);
    t.is(crc32cBase64(crc32c(data)), base64);
  });
}

test('crc32c continues from a previous result', (t) => {
  const data = randomData(100_000, 4);
  t.is(crc32c(data.subarray(33_333), crc32c(data.subarray(0, 33_333))), crc32c(data));
});

test('crc32cBase64 refuses values that are not unsigned 32-bit integers', (t) => {
  for (const value of [-1, 2 ** 32, 1.5, Number.NaN]) t.throws(() => crc32cBase64(value), { instanceOf: RangeError }, String(value));
  t.is(crc32cBase64(0xffffffff), '/////w==');
});

test('a checksum meter passes bytes through unchanged and counts them and their crc32c', async (t) => {
  const data = randomData(1_000_003, 5);
  const meter = new ChecksumMeter();
  const out: Buffer[] = [];
  await pipeline(Readable.from(randomChunks(data, 65_536)), meter, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  t.true(Buffer.concat(out).equals(data));
  t.is(meter.bytes, data.length);
  t.is(meter.crc32c, crc32c(data));
  t.is(meter.base64, crc32cBase64(crc32c(data)));
});

test('a checksum meter that saw nothing reports zero bytes and the empty crc32c', async (t) => {
  const meter = new ChecksumMeter();
  await pipeline(Readable.from([]), meter, async (source: AsyncIterable<Buffer>) => {
    for await (const _ of source) t.fail('no data expected');
  });
  t.is(meter.bytes, 0);
  t.is(meter.base64, 'AAAAAA==');
});

test("the hardware implementation is loaded straight from sse4_crc32's build, the same function fast-crc32c picks", (t) => {
  const require = createRequire(import.meta.url);
  const fast = require('fast-crc32c') as { calculate: (data: Buffer, initial?: number) => number };
  const loaded = loadCrc32c();
  t.not(loaded as unknown, fast, 'not the fallback (the package itself)');
  t.is(loaded.calculate, fast.calculate, 'but the very function the package exports');
  const data = randomData(100_003, 9);
  t.is(loaded.calculate(data, 0), crc32c(data));
});
