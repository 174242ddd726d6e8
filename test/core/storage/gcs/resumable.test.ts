/**
 * Resumable uploads (core/storage/gcs/resumable.ts) against the local GCS
 * emulator with auth enforced: chunks go up while the source still
 * produces, the last one carries the CRC32C, failed chunks resume where the
 * session says, a failing source leaves nothing; and GcsStorage's upload
 * strategies: one request for an object within a chunk, chunks of the chunk
 * size against a distant endpoint, smaller chunks while the object is
 * produced against a near one.
 */
import test, { type ExecutionContext } from 'ava';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32c, crc32cBase64 } from '../../../../core/checksum/crc32c.ts';
import { AlreadyExistsError, StorageError } from '../../../../core/errors.ts';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import { STREAM_FROM, STREAM_TURNAROUND_MS } from '../../../../core/storage/gcs/write.ts';
import { GcsHttpClient, type GcsHttpError } from '../../../../core/storage/gcs/http.ts';
import { uploadResumable, type ResumableUploadOptions } from '../../../../core/storage/gcs/resumable.ts';
import { MetadataServerTokens } from '../../../../core/storage/gcs/token.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { bytes } from '../../../local/gcs/harness.ts';
import { collect } from '../contract.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

async function stack(t: ExecutionContext): Promise<LocalStack> {
  const s = await startLocalStack({ agentRoles: ['roles/storage.objectAdmin'] });
  t.teardown(() => s.close());
  return s;
}

function client(s: LocalStack, retries = 5): GcsHttpClient {
  const c = new GcsHttpClient({ endpoint: s.emulator.url, tokens: new MetadataServerTokens({ host: s.metadata.host }), retries, maxRetryDelaySeconds: 0.02 });
  return c;
}

const options = (extra: Partial<ResumableUploadOptions> = {}): ResumableUploadOptions => ({
  ifGenerationMatch: '0',
  chunkLimit: 2 * MiB,
  minChunk: 1 * MiB,
  ...extra,
});

/** `data` in pieces of `piece` bytes, a pause before each; logs 'source end' into `log` after the last. */
function slowSource(data: Buffer, piece: number, log: string[] = [], fail?: Error): Readable {
  return Readable.from(
    (async function* () {
      for (let offset = 0; offset < data.length; offset += piece) {
        await sleep(5);
        yield data.subarray(offset, offset + piece);
      }
      log.push('source end');
      if (fail) throw fail;
    })(),
    { objectMode: false },
  );
}

/** Record "METHOD target" of every request from now on; `fault` picks requests to fault with `kinds`. */
function spy(s: LocalStack, kinds: ('503' | 'reset-upload')[] = [], fault: (method: string, target: string) => boolean = () => false, seed?: number): string[] {
  const log: string[] = [];
  s.emulator.setFaults({ rate: 1, kinds, seed, match: (method, target) => (log.push(`${method} ${target}`), fault(method, target)) });
  return log;
}

const isChunk = (line: string) => line.startsWith('PUT ') && line.includes('upload_id=');

test('an object still coming in goes up in chunks while it comes and is stored whole with its CRC32C and metadata', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const data = bytes(5 * MiB + 12345, 7);
  const log = spy(s);
  const source = slowSource(data.subarray(256 * KiB), 256 * KiB, log);
  const stored = await uploadResumable(
    http,
    s.bucket,
    'p/obj',
    [data.subarray(0, 256 * KiB)],
    source,
    options({ metadata: { 'gcwal-codec': 'lzo' }, contentType: 'application/x-test' }),
  );
  t.is(stored.size, String(data.length));
  t.is(stored.crc32c, crc32cBase64(crc32c(data)));
  t.deepEqual(stored.metadata, { 'gcwal-codec': 'lzo' });
  t.is(stored.contentType, 'application/x-test');
  t.true(log[0]!.startsWith(`POST /upload/storage/v1/b/${s.bucket}/o?uploadType=resumable&ifGenerationMatch=0&name=p%2Fobj`), log[0]);
  const chunks = log.filter(isChunk);
  t.true(chunks.length >= 3, `${chunks.length} chunk requests for 5 MiB in chunks of at most 2 MiB`);
  t.true(log.findIndex(isChunk) < log.indexOf('source end'), 'the first chunk went up before the source ended');
  const back = await collect(await http.download(s.bucket, 'p/obj'));
  t.true(back.equals(data));
});

test('chunks that are refused or cut off are resumed from what the session holds, and the object is exact', async (t) => {
  const s = await stack(t);
  const http = client(s, 20);
  const data = bytes(6 * MiB + 1, 3);
  let faulted = 0;
  // One session PUT in three fails (a 503, or a reset in mid-body): the
  // first chunk, then every third PUT counting the status queries.
  spy(s, ['503', 'reset-upload'], (method, target) => method === 'PUT' && target.includes('upload_id=') && ++faulted % 3 === 1, 11);
  const stored = await uploadResumable(http, s.bucket, 'p/faults', [], slowSource(data, 512 * KiB), options());
  t.true(faulted >= 6, `${faulted} session PUTs seen`);
  t.is(stored.crc32c, crc32cBase64(crc32c(data)));
  t.true((await collect(await http.download(s.bucket, 'p/faults'))).equals(data));
});

test('a source that fails midway leaves no object and cancels its session', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const log = spy(s);
  const err = await t.throwsAsync(
    uploadResumable(http, s.bucket, 'p/broken', [], slowSource(bytes(3 * MiB), 256 * KiB, [], new Error('disk on fire')), options()),
  );
  t.is(err?.message, 'disk on fire');
  t.true(log.some(isChunk), 'chunks had gone up');
  t.true(
    log.some((line) => line.startsWith('DELETE ') && line.includes('upload_id=')),
    'the session was cancelled',
  );
  const missing = await t.throwsAsync(http.getMetadata(s.bucket, 'p/broken'));
  t.is((missing as GcsHttpError).code, 404);
});

test('a create-only upload over an existing object fails with 412 at the last chunk and keeps the original', async (t) => {
  const s = await stack(t);
  const http = client(s);
  await http.upload(s.bucket, 'p/taken', [Buffer.from('original')], { ifGenerationMatch: '0' });
  const err = await t.throwsAsync(uploadResumable(http, s.bucket, 'p/taken', [], slowSource(bytes(3 * MiB), 256 * KiB), options()));
  t.is((err as GcsHttpError).code, 412);
  t.is((await collect(await http.download(s.bucket, 'p/taken'))).toString(), 'original');
});

test('against a near endpoint the driver streams large writes and sends small ones in one request', async (t) => {
  const s = await stack(t);
  // A threshold no loaded test machine misses; the default is for real endpoints.
  const repo = new GcsStorage(`gs://${s.bucket}/repo`, {
    endpoint: s.emulator.url,
    metadataServer: { host: s.metadata.host },
    retries: 3,
    maxRetryDelaySeconds: 0.05,
    streamTurnaroundMs: 1000,
  });
  await repo.stat('nothing'); // a first answer, to know how quick the endpoint is
  const log = spy(s);
  const large = bytes(STREAM_FROM + 3 * MiB, 5);
  const info = await repo.write('large', slowSource(large, 512 * KiB));
  t.is(info.size, large.length);
  t.true(
    log.some((line) => line.includes('uploadType=resumable')),
    log.join('\n'),
  );
  t.false(log.some((line) => line.includes('uploadType=multipart')));
  log.length = 0;
  await repo.write('small', slowSource(bytes(300 * KiB), 100 * KiB));
  t.deepEqual(
    log.map((line) => line.replace(/\?.*/, '')),
    [`POST /upload/storage/v1/b/${s.bucket}/o`],
  );
  t.true(log[0]!.includes('uploadType=multipart'));
  // Create-only when streamed too.
  await t.throwsAsync(repo.write('large', slowSource(large, 512 * KiB)), { instanceOf: AlreadyExistsError });
  t.true((await collect(await repo.read('large'))).equals(large));
});

test('against an endpoint slower to answer than the streaming threshold the driver sends an object within a chunk in one multipart request', async (t) => {
  const s = await stack(t);
  const repo = new GcsStorage(`gs://${s.bucket}/repo`, {
    endpoint: s.emulator.url,
    metadataServer: { host: s.metadata.host },
    retries: 3,
    maxRetryDelaySeconds: 0.05,
  });
  const log: string[] = [];
  // Every answer comes STREAM_TURNAROUND_MS + 20 ms late, as from a distant endpoint.
  s.emulator.setFaults({ rate: 1, kinds: ['slow'], slowMs: STREAM_TURNAROUND_MS + 20, match: (method, target) => (log.push(`${method} ${target}`), true) });
  await repo.stat('nothing');
  log.length = 0;
  const data = bytes(STREAM_FROM + 3 * MiB, 9);
  const info = await repo.write('far', slowSource(data, 512 * KiB));
  t.is(info.size, data.length);
  t.is(log.length, 1, log.join('\n'));
  t.true(log[0]!.includes('uploadType=multipart'));
});

test('an abort while the source is still coming stops the upload and leaves no object', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const controller = new AbortController();
  spy(s, [], (method, target) => {
    // Abort once the first chunk is on its way.
    if (method === 'PUT' && target.includes('upload_id=')) setTimeout(() => controller.abort(new Error('stop now')), 5);
    return false;
  });
  const never = new Readable({ read() {} });
  never.push(bytes(3 * MiB));
  const err = await t.throwsAsync(uploadResumable(http, s.bucket, 'p/aborted', [], never, options({ signal: controller.signal })));
  t.true(err?.name === 'AbortError' || err?.message === 'stop now', String(err));
  t.true(never.destroyed, 'the source is destroyed');
  const missing = await t.throwsAsync(http.getMetadata(s.bucket, 'p/aborted'));
  t.is((missing as GcsHttpError).code, 404);
});

/** `data` as a stream of `piece`-byte chunks. */
function inPieces(data: Buffer, piece: number): Readable {
  return Readable.from(
    Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece)),
    { objectMode: false },
  );
}

/** A GcsStorage of `chunk`-byte chunks that has seen the endpoint answer only slower than the streaming threshold. */
async function distantRepo(s: LocalStack, prefix: string, chunk: number, log: string[]): Promise<GcsStorage> {
  s.emulator.setFaults({ rate: 0, kinds: [], latencyMs: STREAM_TURNAROUND_MS + 20, match: (method, target) => (log.push(`${method} ${target}`), false) });
  const repo = new GcsStorage(`gs://${s.bucket}/${prefix}`, {
    endpoint: s.emulator.url,
    metadataServer: { host: s.metadata.host },
    retries: 3,
    maxRetryDelaySeconds: 0.05,
    chunkSize: chunk,
  });
  await repo.stat('nothing');
  log.length = 0;
  return repo;
}

test('against a distant endpoint an object larger than a chunk goes up in chunks of the chunk size, the source read at most one chunk ahead', async (t) => {
  const s = await stack(t);
  const log: string[] = [];
  const repo = await distantRepo(s, 'chunked', 256 * KiB, log);
  const data = bytes(6 * 256 * KiB + 1000, 4);
  const piece = 64 * KiB;
  let produced = 0;
  const readAhead: number[] = [];
  const source = Readable.from(
    (function* () {
      for (let offset = 0; offset < data.length; offset += piece) {
        const chunk = data.subarray(offset, offset + piece);
        produced += chunk.length;
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
  s.emulator.setFaults({
    rate: 0,
    kinds: [],
    latencyMs: STREAM_TURNAROUND_MS + 20,
    match: (method, target) => {
      log.push(`${method} ${target}`);
      if (isChunk(`${method} ${target}`)) readAhead.push(produced);
      return false;
    },
  });
  const info = await repo.write('big', source);
  t.is(info.size, data.length);
  t.true(log[0]!.includes('uploadType=resumable'), log.join('\n'));
  t.is(readAhead.length, 7, 'six full chunks and the rest');
  // When chunk k (1-based) goes up, k - 1 chunks are acknowledged; the
  // uploader holds one more chunk and a piece, the source's stream a few
  // pieces of its own: never more, however long the object.
  readAhead.forEach((bytesRead, i) =>
    t.true(bytesRead - i * 256 * KiB <= 256 * KiB + 3 * piece, `${bytesRead} bytes read when chunk ${i + 1} went up: ${readAhead.join(', ')}`),
  );
  t.true((await collect(await repo.read('big'))).equals(data));
});

test('a byte damaged in transit makes the server refuse the last chunk: no object exists and the write fails as a transient checksum error', async (t) => {
  const s = await stack(t);
  const log: string[] = [];
  const repo = await distantRepo(s, 'damaged', 256 * KiB, log);
  const data = bytes(3 * 256 * KiB + 5, 6);
  let chunks = 0;
  s.emulator.setFaults({
    rate: 1,
    kinds: ['corrupt-upload'],
    latencyMs: STREAM_TURNAROUND_MS + 20,
    match: (method, target) => isChunk(`${method} ${target}`) && ++chunks === 2,
  });
  const err = await t.throwsAsync(repo.write('obj', inPieces(data, 64 * KiB)), { instanceOf: StorageError, message: /checksum mismatch in transit.*CRC32C/ });
  t.true((err as StorageError).transient);
  t.is(chunks, 4);
  s.emulator.setFaults(undefined);
  t.is(await repo.stat('obj'), undefined, 'nothing was created');
  await repo.write('obj', Readable.from([data]));
  t.true((await collect(await repo.read('obj'))).equals(data));
});

test('a chunk size that is not a multiple of 256 KiB is rounded down, so every chunk but the last is one', async (t) => {
  const s = await stack(t);
  const log: string[] = [];
  const repo = await distantRepo(s, 'odd', 300 * KiB, log);
  const data = bytes(700 * KiB, 2);
  await repo.write('odd', inPieces(data, 64 * KiB));
  t.is(log.filter(isChunk).length, 3, log.join('\n'));
  t.true((await collect(await repo.read('odd'))).equals(data));
});
