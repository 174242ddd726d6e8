import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HEAD_BYTES, readWalSource, WHOLE_FILE_LIMIT } from '../../../agent/wal/source.ts';
import { crc32c } from '../../../core/checksum/crc32c.ts';
import { InvalidInputError } from '../../../core/errors.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let work: TempDir;
test.before(async () => {
  work = await makeTempDir('wal-source');
});
test.after.always(async () => {
  await work?.cleanup();
});

/** Bytes that differ at every offset, so a misplaced chunk cannot go unnoticed. */
function pattern(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + (i >>> 10)) & 0xff;
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

let counter = 0;
async function file(bytes: Buffer): Promise<string> {
  const p = path.join(work.path, `file-${++counter}`);
  await writeFile(p, bytes);
  return p;
}

const sizes = [0, 1, HEAD_BYTES - 1, 1024 * 1024, 3 * 1024 * 1024 + 5];

for (const size of sizes) {
  for (const [how, wholeFileLimit] of [
    ['read whole', WHOLE_FILE_LIMIT],
    ['scanned and streamed', 0],
  ] as const) {
    test(`a ${size}-byte file ${how} reports its size, CRC32C and first bytes and streams its contents`, async (t) => {
      const bytes = pattern(size);
      const source = await readWalSource(await file(bytes), { wholeFileLimit });
      t.is(source.size, size);
      t.is(await source.checksum(), crc32c(bytes));
      t.true(source.head.equals(bytes.subarray(0, HEAD_BYTES)));
      // equals(), not deepEqual: ava's deep comparison of megabytes takes seconds
      t.true((await collect(source.open())).equals(bytes));
      t.true((await collect(source.open())).equals(bytes), 'each open streams the file again, for a retried upload');
    });
  }
}

test('a streamed file that changes after its scan fails the upload stream', async (t) => {
  const bytes = pattern(2 * 1024 * 1024);
  const p = await file(bytes);
  const source = await readWalSource(p, { wholeFileLimit: 0 });
  await source.checksum();
  bytes[bytes.length - 1]! ^= 0xff;
  await writeFile(p, bytes);
  const err = await t.throwsAsync(collect(source.open()), { instanceOf: InvalidInputError });
  t.is(err?.message, `${path.basename(p)} changed while it was being archived`);
});

test('a file read whole is not read again: later changes do not reach the upload', async (t) => {
  const bytes = pattern(4096);
  const p = await file(bytes);
  const source = await readWalSource(p);
  await source.checksum();
  await writeFile(p, 'replaced');
  t.true((await collect(source.open())).equals(bytes));
});

test('a missing file, a directory and an unopenable path are invalid input with a hint', async (t) => {
  const dir = path.join(work.path, 'a-directory');
  await mkdir(dir);
  const cases = [
    { where: path.join(work.path, 'missing'), message: /does not exist$/ },
    { where: dir, message: /is not a regular file$/ },
    { where: path.join(await file(Buffer.from('x')), 'below-a-file'), message: /^cannot read .*: ENOTDIR$/ },
  ];
  for (const { where, message } of cases) {
    const err = await t.throwsAsync(readWalSource(where), { instanceOf: InvalidInputError });
    t.regex(err?.message ?? '', message);
    t.truthy(err?.hint);
  }
});

for (const [how, wholeFileLimit] of [
  ['read whole', WHOLE_FILE_LIMIT],
  ['scanned', 0],
] as const) {
  test(`an aborted read of a file ${how} rejects with the abort, not as invalid input`, async (t) => {
    const controller = new AbortController();
    const source = await readWalSource(await file(pattern(10)), { signal: controller.signal, wholeFileLimit });
    controller.abort();
    const err = await source.checksum().then(
      () => undefined,
      (e: unknown) => e as { name?: string },
    );
    t.false(err instanceof InvalidInputError);
    t.is(err?.name, 'AbortError');
  });
}

test('a failed push can release a read still running in the background', async (t) => {
  const source = await readWalSource(await file(pattern(3 * 1024 * 1024)));
  source.release();
  source.release();
  const err = await source.checksum().then(
    () => undefined,
    (e: unknown) => e as { name?: string },
  );
  t.is(err?.name, 'AbortError');
});
