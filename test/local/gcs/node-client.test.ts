// The Node client must not probe for a GCE metadata server (3 s timeout) before each call.
process.env.METADATA_SERVER_DETECTION = 'none';

import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage, type File } from '@google-cloud/storage';
import { bytes, logRequests, raw, startTestEmulator } from './harness.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';

/**
 * `apiEndpoint` alone makes the client use `/storage/v1/b/...` for JSON and
 * `/upload/storage/v1/...` for uploads, and skip auth (custom endpoint).
 */
function client(url: string): Storage {
  return new Storage({ apiEndpoint: url, projectId: 'test' });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest('base64');

for (const resumable of [false, true]) {
  test(`save (${resumable ? 'resumable' : 'multipart'}) with ifGenerationMatch 0 creates once and the second save gets 412`, async (t) => {
    const { emu } = await startTestEmulator(t);
    await emu.createBucket('bkt');
    const file = client(emu.url).bucket('bkt').file('dir/a.txt');
    const data = Buffer.from('hello world');
    await file.save(data, { resumable, contentType: 'text/plain', metadata: { metadata: { k: 'v' } }, preconditionOpts: { ifGenerationMatch: 0 } });
    const [metadata] = await file.getMetadata();
    t.is(metadata.name, 'dir/a.txt');
    t.is(metadata.size, '11');
    t.is(metadata.contentType, 'text/plain');
    t.deepEqual(metadata.metadata, { k: 'v' });
    t.is(metadata.crc32c, crc32cBase64(crc32c(data)));
    t.is(metadata.md5Hash, md5(data));
    t.is(metadata.metageneration, '1');
    t.regex(String(metadata.generation), /^\d+$/);
    const err = await t.throwsAsync(file.save('other', { resumable, preconditionOpts: { ifGenerationMatch: 0 } }), { any: true });
    t.is((err as { code?: number }).code, 412);
    t.deepEqual(await file.download().then(([b]) => b), data);
  });
}

test("a 10 MiB resumable upload passes the client's crc32c check and downloads intact", async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('big');
  const data = bytes(10 * 1024 * 1024, 7);
  await file.save(data, { preconditionOpts: { ifGenerationMatch: 0 } });
  const [metadata] = await file.getMetadata();
  t.is(metadata.size, String(data.length));
  t.is(metadata.crc32c, crc32cBase64(crc32c(data)));
  const [downloaded] = await file.download();
  t.true(downloaded.equals(data));
});

test('createWriteStream with chunkSize uploads in chunks acknowledged with 308', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const log = logRequests(emu);
  const file = client(emu.url).bucket('bkt').file('chunked');
  const data = bytes(700 * 1024, 3);
  await pipeline(Readable.from([data]), file.createWriteStream({ chunkSize: 256 * 1024, preconditionOpts: { ifGenerationMatch: 0 } }));
  const puts = log.filter((line) => line.startsWith('PUT ') && line.includes('upload_id='));
  t.is(puts.length, 3, log.join('\n'));
  t.true((await file.download())[0].equals(data));
});

test('createReadStream reads whole objects and byte ranges', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('r');
  const data = bytes(100_000, 5);
  await file.save(data, { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  t.true((await readAll(file.createReadStream())).equals(data));
  t.true((await readAll(file.createReadStream({ start: 10, end: 19 }))).equals(data.subarray(10, 20)));
  t.true((await readAll(file.createReadStream({ start: 99_990 }))).equals(data.subarray(99_990)));
});

test('exists and getMetadata tell a missing object from a present one', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const bucket = client(emu.url).bucket('bkt');
  t.false((await bucket.file('nope').exists())[0]);
  const err = await t.throwsAsync(bucket.file('nope').getMetadata());
  t.is((err as { code?: number }).code, 404);
  await bucket.file('yes').save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  t.true((await bucket.file('yes').exists())[0]);
});

test('getFiles honours prefix, delimiter, pagination, startOffset and endOffset', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const bucket = client(emu.url).bucket('bkt');
  const names = ['p/a', 'p/b', 'p/c', 'p/d', 'p/e', 'p/sub/x', 'p/sub/y', 'q/z'];
  // Out of order on purpose: listings must come back sorted.
  for (const name of [...names].reverse()) await bucket.file(name).save(name, { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });

  const [all] = await bucket.getFiles();
  t.deepEqual(
    all.map((f: File) => f.name),
    names,
  );

  const [underP] = await bucket.getFiles({ prefix: 'p/' });
  t.deepEqual(
    underP.map((f: File) => f.name),
    names.slice(0, 7),
  );

  const [top, , response] = await bucket.getFiles({ prefix: 'p/', delimiter: '/', autoPaginate: false });
  t.deepEqual(
    top.map((f: File) => f.name),
    ['p/a', 'p/b', 'p/c', 'p/d', 'p/e'],
  );
  t.deepEqual((response as { prefixes?: string[] }).prefixes, ['p/sub/']);

  const pages: string[][] = [];
  let query: object | null = { prefix: 'p/', maxResults: 3, autoPaginate: false };
  while (query) {
    const [files, next]: [File[], object | null, unknown] = (await bucket.getFiles(query)) as never;
    pages.push(files.map((f) => f.name));
    query = next;
  }
  t.deepEqual(pages, [['p/a', 'p/b', 'p/c'], ['p/d', 'p/e', 'p/sub/x'], ['p/sub/y']]);

  const [range] = await bucket.getFiles({ startOffset: 'p/b', endOffset: 'p/e' });
  t.deepEqual(
    range.map((f: File) => f.name),
    ['p/b', 'p/c', 'p/d'],
  );
});

test('setMetadata merges user metadata, null deletes a key, and metageneration goes up', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('m');
  await file.save('x', { resumable: false, metadata: { metadata: { a: '1', b: '2' } }, preconditionOpts: { ifGenerationMatch: 0 } });
  const [before] = await file.getMetadata();
  const [after] = await file.setMetadata({ metadata: { b: null, c: '3' } }, { ifMetagenerationMatch: 1 });
  t.deepEqual(after.metadata, { a: '1', c: '3' });
  t.is(after.metageneration, '2');
  t.is(after.generation, before.generation);
  const err = await t.throwsAsync(file.setMetadata({ metadata: { d: '4' } }, { ifMetagenerationMatch: 1 }));
  t.is((err as { code?: number }).code, 412);
});

test('delete removes the object and a second delete is 404', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('d');
  await file.save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  await file.delete();
  t.false((await file.exists())[0]);
  const err = await t.throwsAsync(file.delete());
  t.is((err as { code?: number }).code, 404);
  await t.notThrowsAsync(file.delete({ ignoreNotFound: true }));
});

test('buckets can be created and read by the client', async (t) => {
  const { emu } = await startTestEmulator(t);
  const storage = client(emu.url);
  await storage.createBucket('made-by-client');
  const [metadata] = await storage.bucket('made-by-client').getMetadata();
  t.is(metadata.name, 'made-by-client');
  t.true((await storage.bucket('made-by-client').exists())[0]);
  t.false((await storage.bucket('no-such-bucket').exists())[0]);
  const err = await t.throwsAsync(storage.createBucket('made-by-client'));
  t.is((err as { code?: number }).code, 409);
});

// Serial (ava runs serial tests before the others): on a failed download the
// client destroys its whole HTTP agent (file.js onComplete, a node-fetch leak
// workaround), which resets every other request in flight in this process.
test.serial('the client detects a download whose bytes do not match the stored crc32c', async (t) => {
  const { emu, dir } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('rot');
  await file.save(bytes(50_000, 9), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  const [metadata] = await file.getMetadata();
  // Bit rot behind the emulator's back: same size, one byte flipped.
  const dataFile = path.join(dir, 'buckets', 'bkt', 'data', String(metadata.generation));
  const stored = await readFile(dataFile);
  stored[123] ^= 0xff;
  await writeFile(dataFile, stored);
  const err = await t.throwsAsync(file.download());
  t.is((err as { code?: string }).code, 'CONTENT_DOWNLOAD_MISMATCH');
});

test('objects survive a restart of the emulator on the same directory', async (t) => {
  const first = await startTestEmulator(t);
  await first.emu.createBucket('bkt');
  await client(first.emu.url)
    .bucket('bkt')
    .file('keep')
    .save('kept', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  const [before] = await client(first.emu.url).bucket('bkt').file('keep').getMetadata();
  await first.emu.close();
  const second = await startTestEmulator(t, {}, first.dir);
  const file = client(second.emu.url).bucket('bkt').file('keep');
  t.is((await file.download())[0].toString(), 'kept');
  await file.save('new', { resumable: false, preconditionOpts: { ifGenerationMatch: Number(before.generation) } });
  const [after] = await file.getMetadata();
  t.true(BigInt(after.generation!) > BigInt(before.generation!));
});

test("with STORAGE_EMULATOR_HOST the client's unprefixed JSON paths and upload paths both work", async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const log = logRequests(emu);
  // Read once, at construction; restored at once so concurrent tests are unaffected.
  process.env.STORAGE_EMULATOR_HOST = emu.url;
  let storage: Storage;
  try {
    storage = new Storage({ projectId: 'test' });
  } finally {
    delete process.env.STORAGE_EMULATOR_HOST;
  }
  const file = storage.bucket('bkt').file('dir/e.txt');
  await file.save('via env', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  await file.save('via env, resumable', { resumable: true, preconditionOpts: { ifGenerationMatch: (await file.getMetadata())[0].generation! } });
  t.is((await file.download())[0].toString(), 'via env, resumable');
  t.deepEqual(
    (await storage.bucket('bkt').getFiles({ prefix: 'dir/' }))[0].map((f: File) => f.name),
    ['dir/e.txt'],
  );
  await file.delete();
  t.true(
    log.some((line) => line.startsWith('GET /b/bkt/o/dir%2Fe.txt')),
    log.join('\n'),
  );
  t.true(
    log.some((line) => line.startsWith('POST /upload/storage/v1/b/bkt/o?')),
    log.join('\n'),
  );
});

test('close() ends keep-alive and in-flight connections and resolves promptly', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const storage = client(emu.url);
  await storage
    .bucket('bkt')
    .file('x')
    .save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  emu.setFaults({ rate: 1, kinds: ['slow'], slowMs: 60_000 });
  // A raw request: the Node client would keep retrying against the closed port.
  const hanging = raw(`${emu.url}/storage/v1/b/bkt/o/x`).catch((err: Error) => err);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const started = Date.now();
  await emu.close();
  t.true(Date.now() - started < 30_000, 'close did not wait for the 60 s answer');
  await emu.close();
  t.true((await hanging) instanceof Error, 'the in-flight request was cut off');
});
