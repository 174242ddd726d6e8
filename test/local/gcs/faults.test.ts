process.env.METADATA_SERVER_DETECTION = 'none';

import test from 'ava';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage } from '@google-cloud/storage';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { FaultInjector, type FaultTarget } from '../../../local/gcs/faults.ts';
import { bytes, raw, startTestEmulator } from './harness.ts';

/** A Node client whose retries wait at most 1 s (its resumable uploader's minimum), so the tests stay quick. */
function client(url: string): Storage {
  return new Storage({ apiEndpoint: url, projectId: 'test', retryOptions: { maxRetryDelay: 1, maxRetries: 5 } });
}

const isUpload = (_method: string, path: string) => path.startsWith('/upload/');

test('a burst of 503s is retried by the Node client without the caller noticing', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const file = client(emu.url).bucket('bkt').file('obj');
  emu.setFaults({ rate: 0, kinds: [], burst: { status: 503, count: 2 } });
  await file.save('survived', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  t.is(emu.stats().faults, 2);
  emu.setFaults({ rate: 0, kinds: [], burst: { status: 503, count: 2 } });
  const [metadata] = await file.getMetadata();
  t.is(metadata.size, '8');
  emu.setFaults({ rate: 0, kinds: [], burst: { status: 429, count: 2 } });
  t.is((await file.download())[0].toString(), 'survived');
  t.is(emu.stats().faults, 6);
});

test("injected statuses carry Google's error bodies", async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  emu.setFaults({ rate: 1, kinds: ['429'] });
  const limited = await raw(`${emu.url}/storage/v1/b/bkt/o`);
  t.is(limited.status, 429);
  t.is(limited.json().error.errors[0].reason, 'rateLimitExceeded');
  emu.setFaults({ rate: 1, kinds: ['503'] });
  const busy = await raw(`${emu.url}/storage/v1/b/bkt/o`);
  t.is(busy.status, 503);
  t.is(busy.json().error.errors[0].reason, 'backendError');
  emu.setFaults(undefined);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o`)).status, 200);
});

test('a reset upload is never finalised: the listing shows nothing', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  emu.setFaults({ rate: 1, kinds: ['reset-upload'], match: isUpload });
  const file = client(emu.url).bucket('bkt').file('partial');
  // node-fetch's FetchError is not an Error subclass, hence `any`.
  const err = await t.throwsAsync(file.save(bytes(200_000), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }), { any: true });
  t.regex(String((err as { code?: string }).code), /ECONNRESET|EPIPE/);
  emu.setFaults(undefined);
  t.deepEqual((await client(emu.url).bucket('bkt').getFiles())[0], []);
  t.true(emu.stats().faults >= 1);
});

test('a resumable upload whose chunks are reset at random ends as the complete object', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const data = bytes(2 * 1024 * 1024, 8);
  emu.setFaults({ rate: 0.3, kinds: ['reset-upload'], seed: 42, match: (method, path) => method === 'PUT' && isUpload(method, path) });
  const file = client(emu.url).bucket('bkt').file('resilient');
  await pipeline(Readable.from([data]), file.createWriteStream({ chunkSize: 256 * 1024, preconditionOpts: { ifGenerationMatch: 0 } }));
  emu.setFaults(undefined);
  t.true(emu.stats().faults >= 1, 'the seed must produce at least one reset');
  const [files] = await client(emu.url).bucket('bkt').getFiles();
  t.deepEqual(
    files.map((f) => f.name),
    ['resilient'],
  );
  t.true((await file.download())[0].equals(data));
});

test('a reset download sends headers and part of the body, then drops the connection', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const data = bytes(100_000, 3);
  await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=d`, { method: 'POST', body: data });
  emu.setFaults({ rate: 1, kinds: ['reset-download'] });
  const received = await new Promise<{ status: number; length: number; error?: string }>((resolve) => {
    request(`${emu.url}/storage/v1/b/bkt/o/d?alt=media`, { agent: false }, (res) => {
      let length = 0;
      res.on('data', (chunk: Buffer) => (length += chunk.length));
      res.on('error', (err) => resolve({ status: res.statusCode!, length, error: err.message }));
      res.on('end', () => resolve({ status: res.statusCode!, length }));
    }).end();
  });
  t.is(received.status, 200);
  t.true(received.length > 0 && received.length < data.length, String(received.length));
  t.truthy(received.error);
  // Only downloads are reset; metadata calls go through.
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/d`)).status, 200);
});

test('slow delays matching requests only', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  emu.setFaults({ rate: 1, kinds: ['slow'], slowMs: 400, match: (_method, path) => path.includes('/o') });
  let started = Date.now();
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o`)).status, 200);
  t.true(Date.now() - started >= 390);
  started = Date.now();
  t.is((await raw(`${emu.url}/storage/v1/b/bkt`)).status, 200);
  t.true(Date.now() - started < 300);
});

test('a seeded plan makes the same decisions every time', (t) => {
  const target: FaultTarget = { method: 'GET', path: '/b/x/o/y', uploadsBody: false, downloads: true };
  const run = () => {
    const injector = new FaultInjector({ rate: 0.5, kinds: ['429', '503', 'reset-download', 'reset-upload'], seed: 7 });
    return Array.from({ length: 50 }, () => injector.decide(target)?.kind ?? '-');
  };
  const first = run();
  t.deepEqual(run(), first);
  t.true(first.includes('-') && first.some((k) => k !== '-'));
  // reset-upload never applies to a download.
  const kinds = Array.from({ length: 200 }, () => new FaultInjector({ rate: 1, kinds: ['reset-upload'] }).decide(target));
  t.true(kinds.every((k) => k === undefined));
});

test('a corrupted upload arrives with one byte flipped: a media upload is stored damaged, one that claims its CRC32C is refused', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const data = bytes(100_000, 5);
  emu.setFaults({ rate: 1, kinds: ['corrupt-upload'], match: isUpload });
  const stored = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=damaged`, { method: 'POST', body: data });
  t.is(stored.status, 200);
  const claimed = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=checked`, {
    method: 'POST',
    body: data,
    headers: { 'x-goog-hash': `crc32c=${crc32cBase64(crc32c(data))}` },
  });
  t.is(claimed.status, 400);
  t.regex(claimed.json().error.message, /CRC32C/);
  emu.setFaults(undefined);
  const back = (await raw(`${emu.url}/storage/v1/b/bkt/o/damaged?alt=media`)).body;
  t.is(back.length, data.length);
  const differing = [...back].flatMap((b, i) => (b === data[i] ? [] : [i]));
  t.deepEqual(differing, [data.length / 2]);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/checked`)).status, 404);
});

test('a lost answer leaves the upload done: the client sees the connection drop, the object exists', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  emu.setFaults({ rate: 1, kinds: ['lose-answer'], match: isUpload });
  await t.throwsAsync(raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=media&name=landed`, { method: 'POST', body: 'made it' }), {
    message: /socket hang up|ECONNRESET/,
  });
  emu.setFaults(undefined);
  t.is((await raw(`${emu.url}/storage/v1/b/bkt/o/landed?alt=media`)).body.toString(), 'made it');
});
