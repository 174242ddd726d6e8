import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { lzoCodec } from '../../../../core/codec/lzo/lzop.ts';
import { encodeLzopInMemory, startLzopHelper, type InMemoryData, type LzopEncodeStats, type LzopHelper } from '../../../../core/codec/lzo/parallel.ts';
import { execOk } from '../../../../local/testkit/exec.ts';
import { makeTempDir } from '../../../../local/testkit/tmp.ts';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** WAL-like data: runs of repeated records with some noise, compressible like a real segment. */
function walLike(size: number): Buffer {
  const out = Buffer.alloc(size);
  const record = Buffer.from('UPDATE pgbench_accounts SET abalance = abalance + 42 WHERE aid = ');
  const noise = randomBytes(Math.ceil(size / record.length) * 8);
  for (let offset = 0, n = 0; offset < size; offset += record.length + 8, n += 8) {
    record.copy(out, offset);
    noise.copy(out, offset + record.length, n, n + Math.min(8, Math.max(0, size - offset - record.length)));
  }
  return out;
}

function inMemory(data: Buffer, options: { shared?: boolean; failAt?: number } = {}): InMemoryData {
  let buffer = data;
  if (options.shared ?? true) {
    buffer = Buffer.from(new SharedArrayBuffer(data.length));
    data.copy(buffer);
  }
  const failure = new Error('read failed');
  const done = options.failAt === undefined ? Promise.resolve() : Promise.reject(failure);
  done.catch(() => {});
  return {
    data: buffer,
    until: async (end) => {
      if (options.failAt !== undefined && end > options.failAt) throw failure;
    },
    done,
  };
}

async function collect(iterable: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of iterable) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function streamed(data: Buffer): Promise<Buffer> {
  return collect(Readable.from([data]).pipe(lzoCodec().compressor()));
}

const sizes: [string, () => Buffer][] = [
  ['nothing', () => Buffer.alloc(0)],
  ['one byte', () => Buffer.from([1])],
  ['100 KiB', () => walLike(100 * 1024)],
  ['exactly one block', () => walLike(256 * 1024)],
  ['5 MiB and 3 bytes', () => walLike(5 * 1024 * 1024 + 3)],
  ['2 MiB of random bytes (every block stored)', () => randomBytes(2 * 1024 * 1024)],
  ['a 16 MiB segment', () => walLike(16 * 1024 * 1024)],
];

/** A started helper, ready, stopped when the test ends; fails the test when the worker script is not found from source. */
async function readyHelper(t: ExecutionContext): Promise<LzopHelper> {
  const helper = startLzopHelper();
  if (!helper) throw new Error('the worker script is not found from source');
  t.teardown(() => helper.stop());
  await helper.ready;
  return helper;
}

for (const [what, make] of sizes) {
  test(`with the helper, ${what} encodes to the streaming compressor's bytes`, async (t) => {
    const helper = await readyHelper(t);
    const data = make();
    t.true((await collect(encodeLzopInMemory(inMemory(data), helper))).equals(await streamed(data)));
  });
}

test('a ready helper encodes part of a 16 MiB segment, and lzop -d restores the whole', async (t) => {
  const helper = await readyHelper(t);
  const data = walLike(16 * 1024 * 1024);
  const stats: LzopEncodeStats = { helperBlocks: 0 };
  const encoded = await collect(encodeLzopInMemory(inMemory(data), helper, stats));
  t.true(stats.helperBlocks > 0, 'the helper took some of the 64 blocks');
  t.true(stats.helperBlocks < 64, 'and this thread took some too');
  const dir = await makeTempDir('lzop-parallel');
  t.teardown(() => dir.cleanup());
  await writeFile(path.join(dir.path, 'x.lzo'), encoded);
  await execOk('lzop', ['-d', '-f', 'x.lzo'], { cwd: dir.path });
  t.true((await readFile(path.join(dir.path, 'x'))).equals(data));
});

test('a helper stopped in the middle leaves its blocks to this thread, and the stream is still whole', async (t) => {
  const helper = startLzopHelper()!;
  await helper.ready;
  const data = walLike(16 * 1024 * 1024);
  const chunks: Buffer[] = [];
  let stopped = false;
  for await (const chunk of encodeLzopInMemory(inMemory(data), helper)) {
    chunks.push(chunk);
    if (chunks.length === 3 && !stopped) {
      stopped = true;
      await helper.stop();
    }
  }
  t.true(helper.dead);
  t.true(Buffer.concat(chunks).equals(await streamed(data)));
});

test('without shared memory this thread encodes alone, with the same bytes', async (t) => {
  const helper = await readyHelper(t);
  const data = walLike(3 * 1024 * 1024);
  const stats: LzopEncodeStats = { helperBlocks: 0 };
  t.true((await collect(encodeLzopInMemory(inMemory(data, { shared: false }), helper, stats))).equals(await streamed(data)));
  t.is(stats.helperBlocks, 0);
});

test('without a helper this thread encodes alone, with the same bytes', async (t) => {
  const data = walLike(1024 * 1024 + 17);
  t.true((await collect(encodeLzopInMemory(inMemory(data), undefined))).equals(await streamed(data)));
});

test('a failed read fails the encoding instead of ending it short', async (t) => {
  const helper = startLzopHelper()!;
  t.teardown(() => helper.stop());
  await t.throwsAsync(collect(encodeLzopInMemory(inMemory(walLike(2 * 1024 * 1024), { failAt: 1024 * 1024 }), helper)), { message: 'read failed' });
});
