import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseMultipart } from '../../../local/gcs/multipart.ts';

const BOUNDARY = 'gcwal-test-boundary';

function body(media: Buffer, metadata: object = { name: 'wal/x' }): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify(metadata)}\r\n--${BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    media,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

function chunks(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) parts.push(data.subarray(offset, offset + size));
  return Readable.from(parts, { objectMode: false });
}

async function mediaOf(data: Buffer, size: number): Promise<Buffer> {
  const { head, media } = await parseMultipart(chunks(data, size), BOUNDARY);
  const parts: Buffer[] = [];
  for await (const part of media) parts.push(Buffer.from(part as Buffer));
  void head;
  return Buffer.concat(parts);
}

// The delimiter is "\r\n--" + boundary: 23 bytes; splits below, at and above it, and odd sizes.
const SIZES = [1, 2, 3, 7, 21, 22, 23, 24, 25, 100, 4093, 65536];

const medias: [string, Buffer][] = [
  ['random bytes', randomBytes(30_000)],
  ['no bytes', Buffer.alloc(0)],
  ['bytes that look like the start of the delimiter', Buffer.from(`x\r\n--${BOUNDARY.slice(0, -1)}Y\r\n--\r\n-${BOUNDARY}\r\n--${BOUNDARY.slice(0, 5)}`)],
  ['a media part ending in CR LF', Buffer.from('last line\r\n')],
];

for (const [what, media] of medias) {
  test(`the media part (${what}) comes back exactly whatever the body's chunk sizes`, async (t) => {
    for (const size of SIZES) {
      const got = await mediaOf(body(media), size);
      t.true(got.equals(media), `chunks of ${size} bytes`);
    }
  });
}

test('a body cut before the closing delimiter is an error, not a shorter object', async (t) => {
  const whole = body(randomBytes(10_000));
  for (const size of [1, 23, 4096]) {
    await t.throwsAsync(mediaOf(whole.subarray(0, whole.length - 8), size), { message: /ended before the closing boundary/ });
  }
});
