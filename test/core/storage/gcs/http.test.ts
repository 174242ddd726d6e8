/**
 * The gs:// driver's own JSON API client (core/storage/gcs/http.ts) against
 * the local GCS emulator with auth enforced, tokens from the metadata-server
 * stand-in: the multipart upload and its checks, downloads that fail rather
 * than end short, retries of injected faults, and how its answers map to
 * gcwal's errors through GcsStorage. Each test has a stack of its own, as
 * fault plans are per emulator.
 */
import test, { type ExecutionContext } from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { crc32c, crc32cBase64 } from '../../../../core/checksum/crc32c.ts';
import { AlreadyExistsError, AuthError, NotFoundError, RepositoryMissingError, StorageError } from '../../../../core/errors.ts';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import { GcsHttpClient, GcsHttpError } from '../../../../core/storage/gcs/http.ts';
import { MetadataServerTokens } from '../../../../core/storage/gcs/token.ts';
import { AdaptiveLimiter } from '../../../../core/storage/gcs/throttle.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { bytes } from '../../../local/gcs/harness.ts';
import { collect } from '../contract.ts';

async function stack(t: ExecutionContext, roles: 'admin' | 'agent' = 'admin'): Promise<LocalStack> {
  const s = await startLocalStack({ objectRateLimitMs: false, ...(roles === 'admin' ? { agentRoles: ['roles/storage.objectAdmin'] } : {}) });
  t.teardown(() => s.close());
  return s;
}

function client(s: LocalStack, options: { retries?: number; limiter?: AdaptiveLimiter } = {}): GcsHttpClient {
  const c = new GcsHttpClient({
    endpoint: s.emulator.url,
    tokens: new MetadataServerTokens({ host: s.metadata.host }),
    retries: options.retries ?? 3,
    maxRetryDelaySeconds: 0.05,
    limiter: options.limiter,
  });
  return c;
}

function storage(s: LocalStack, prefix = 'repo'): GcsStorage {
  return new GcsStorage(`gs://${s.bucket}/${prefix}`, {
    endpoint: s.emulator.url,
    metadataServer: { host: s.metadata.host },
    retries: 3,
    maxRetryDelaySeconds: 0.05,
  });
}

/** Record "METHOD target" of every request from now on, faulting those `fault` picks (rate 1). */
function spy(s: LocalStack, kinds: ('reset-upload' | 'reset-download')[] = [], fault: (method: string, target: string) => boolean = () => false): string[] {
  const log: string[] = [];
  s.emulator.setFaults({ rate: 1, kinds, match: (method, target) => (log.push(`${method} ${target}`), fault(method, target)) });
  return log;
}

test('a multipart upload carries name, metadata and CRC32C; a second create of the name is refused', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const body = [Buffer.from('hello, '), Buffer.from('multipart')];
  const log = spy(s);
  const stored = await http.upload(s.bucket, 'dir/obj', body, {
    ifGenerationMatch: '0',
    metadata: { 'gcwal-codec': 'none' },
    contentType: 'application/x-test',
  });
  t.deepEqual(log, [`POST /upload/storage/v1/b/${s.bucket}/o?uploadType=multipart&ifGenerationMatch=0`], 'one request');
  t.is(stored.name, 'dir/obj');
  t.is(stored.size, '16');
  t.is(stored.crc32c, crc32cBase64(crc32c(Buffer.concat(body))));
  t.is(stored.contentType, 'application/x-test');
  t.deepEqual(stored.metadata, { 'gcwal-codec': 'none' });
  const again = await t.throwsAsync(http.upload(s.bucket, 'dir/obj', [Buffer.from('other')], { ifGenerationMatch: '0' }));
  t.true(again instanceof GcsHttpError);
  t.is((again as GcsHttpError).code, 412);
  // Through the driver: AlreadyExistsError, the original kept.
  const repo = storage(s, 'dir');
  const err = await t.throwsAsync(repo.write('obj', Readable.from([Buffer.from('other')])));
  t.true(err instanceof AlreadyExistsError, String(err));
  t.is((await collect(await repo.read('obj'))).toString(), 'hello, multipart');
});

test('a replace names the generation it replaces', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const first = await http.upload(s.bucket, 'cat', [Buffer.from('1')], { ifGenerationMatch: '0' });
  const second = await http.upload(s.bucket, 'cat', [Buffer.from('2')], { ifGenerationMatch: String(first.generation) });
  t.true(BigInt(String(second.generation)) > BigInt(String(first.generation)));
  const stale = await t.throwsAsync(http.upload(s.bucket, 'cat', [Buffer.from('3')], { ifGenerationMatch: String(first.generation) }));
  t.is((stale as GcsHttpError).code, 412);
});

test('a wrong CRC32C is rejected by the server and leaves no object', async (t) => {
  const s = await stack(t);
  const http = client(s);
  const body = Buffer.from('the bytes');
  const wrong = crc32cBase64(crc32c(Buffer.from('other bytes')));
  const err = await t.throwsAsync(http.upload(s.bucket, 'crc', [body], { ifGenerationMatch: '0', crc32c: wrong }));
  t.true(err instanceof GcsHttpError, String(err));
  t.is((err as GcsHttpError).code, 400);
  t.regex(err!.message, /CRC32C/);
  const missing = await t.throwsAsync(http.getMetadata(s.bucket, 'crc'));
  t.is((missing as GcsHttpError).code, 404);
  // The name is still free.
  await t.notThrowsAsync(http.upload(s.bucket, 'crc', [body], { ifGenerationMatch: '0' }));
});

test('a connection reset in the middle of a download is an error of the stream, never a short read', async (t) => {
  const s = await stack(t);
  const data = bytes(300_000, 5);
  await client(s).upload(s.bucket, 'repo/big', [data], { ifGenerationMatch: '0' });
  spy(s, ['reset-download'], (_method, target) => target.includes('alt=media'));
  const raw = await client(s).download(s.bucket, 'repo/big');
  const received: Buffer[] = [];
  const err = await t.throwsAsync(async () => {
    for await (const chunk of raw) received.push(chunk as Buffer);
  });
  t.truthy(err);
  const got = Buffer.concat(received).length;
  t.true(got > 0 && got < data.length, `${got} bytes before the error`);
  // Through the driver: a transient storage error the caller retries.
  const viaDriver = await t.throwsAsync(async () => collect(await storage(s).read('big')));
  t.true(viaDriver instanceof StorageError, String(viaDriver));
  t.true((viaDriver as StorageError).transient);
  s.emulator.setFaults(undefined);
  t.deepEqual(await collect(await storage(s).read('big')), data);
});

test('bursts of 503 and 429 are retried to success; a longer burst fails as transient', async (t) => {
  const s = await stack(t);
  const limiter = new AdaptiveLimiter(8);
  const http = client(s, { retries: 3, limiter });
  s.emulator.setFaults({ rate: 0, kinds: [], burst: { status: 503, count: 3 } });
  await http.upload(s.bucket, 'repo/k', [Buffer.from('survived')], { ifGenerationMatch: '0' });
  t.is(s.emulator.stats().faults, 3);
  s.emulator.setFaults({ rate: 0, kinds: [], burst: { status: 503, count: 2 } });
  t.is((await http.getMetadata(s.bucket, 'repo/k')).size, '8');
  s.emulator.setFaults({ rate: 0, kinds: [], burst: { status: 429, count: 2 } });
  t.is((await collect(await http.download(s.bucket, 'repo/k'))).toString(), 'survived');
  t.is(s.emulator.stats().faults, 7);
  t.true(limiter.limit < 8, 'a 429 lowers the concurrency limit');
  s.emulator.setFaults({ rate: 0, kinds: [], burst: { status: 503, count: 10 } });
  const err = await t.throwsAsync(storage(s).stat('k'));
  t.true(err instanceof StorageError, String(err));
  t.true((err as StorageError).transient);
  t.regex(err!.message, /HTTP 503 after retries/);
  t.is(s.emulator.stats().faults, 7 + 4, 'one try and three retries');
});

test('an upload whose connection is reset is sent again and lands once', async (t) => {
  const s = await stack(t);
  let resets = 2;
  const log = spy(s, ['reset-upload'], (_method, target) => target.startsWith('/upload/') && resets-- > 0);
  const repo = storage(s);
  const body = bytes(200_000, 9);
  const info = await repo.write('wal/000000010000000000000001', Readable.from([body]));
  t.is(info.size, body.length);
  t.is(log.filter((l) => l.startsWith('POST /upload/')).length, 3);
  t.deepEqual(await collect(await repo.read('wal/000000010000000000000001')), body);
});

test('ranged reads return exactly the bytes asked for', async (t) => {
  const s = await stack(t);
  const repo = storage(s);
  const body = bytes(5000, 2);
  await repo.write('r', Readable.from([body]));
  const cases: [number | undefined, number | undefined][] = [
    [10, 19],
    [4990, undefined],
    [0, 0],
    [undefined, 99],
    [4999, 4999],
  ];
  for (const [start, end] of cases) {
    t.deepEqual(await collect(await repo.read('r', { start, end })), body.subarray(start ?? 0, end === undefined ? undefined : end + 1), `${start}-${end}`);
  }
  t.deepEqual(await collect(await repo.read('r')), body);
});

test('a missing object is undefined to stat and not found to read; a missing bucket is a missing repository (exit 13), never not found', async (t) => {
  const s = await stack(t);
  // Project-wide roles: without any permission on a bucket name the answer is 403, not 404.
  s.authority.grant(s.agentIdentity, 'roles/storage.objectAdmin');
  const repo = storage(s);
  t.is(await repo.stat('wal/nothing'), undefined);
  t.true((await t.throwsAsync(repo.read('wal/nothing'))) instanceof NotFoundError);
  const elsewhere = new GcsStorage('gs://no-such-bucket/repo', { endpoint: s.emulator.url, metadataServer: { host: s.metadata.host }, retries: 0 });
  for (const call of [() => elsewhere.stat('k'), () => elsewhere.read('k'), () => elsewhere.write('k', Readable.from([Buffer.from('x')]))]) {
    const err = await t.throwsAsync(call());
    t.false(err instanceof NotFoundError);
    t.true(err instanceof RepositoryMissingError, String(err));
    t.is((err as RepositoryMissingError).exitCode, 13);
    t.regex(err!.message, /bucket no-such-bucket does not exist/);
  }
});

test('an identity without permission gets auth errors naming it', async (t) => {
  const s = await stack(t, 'agent');
  const nobody = `nobody@${s.projectId}.iam.gserviceaccount.com`;
  await storage(s).write('present', Readable.from([Buffer.from('v')]));
  s.metadata.setIdentity(nobody);
  const repo = storage(s);
  for (const call of [() => repo.stat('present'), () => repo.read('present'), () => repo.write('new', Readable.from([Buffer.from('x')]))]) {
    const err = await t.throwsAsync(call());
    t.true(err instanceof AuthError, String(err));
    t.true(err!.message.includes(`refused as ${nobody}: permission denied`), err!.message);
  }
});

test('a revoked token is replaced once and the call goes through', async (t) => {
  const s = await stack(t);
  const tokens = new MetadataServerTokens({ host: s.metadata.host });
  const http = new GcsHttpClient({ endpoint: s.emulator.url, tokens, retries: 0 });
  await http.upload(s.bucket, 'k', [Buffer.from('v')], { ifGenerationMatch: '0' });
  const before = s.metadata.requests();
  s.authority.revoke((await tokens.headers()).Authorization.slice('Bearer '.length));
  t.is((await http.getMetadata(s.bucket, 'k')).size, '1');
  t.is(s.metadata.requests() - before, 1, 'one new token');
});

test('an abort stops a request waiting for its answer and a download in its body', async (t) => {
  const s = await stack(t);
  const http = client(s);
  await http.upload(s.bucket, 'k', [bytes(2 * 1024 * 1024, 4)], { ifGenerationMatch: '0' });
  s.emulator.setFaults({ rate: 1, kinds: ['slow'], slowMs: 60_000 });
  const ac = new AbortController();
  const started = Date.now();
  setTimeout(() => ac.abort(), 100);
  await t.throwsAsync(http.getMetadata(s.bucket, 'k', { signal: ac.signal }), { any: true, name: 'AbortError' });
  t.true(Date.now() - started < 30_000, 'the abort did not wait for the 60 s answer');
  s.emulator.setFaults(undefined);
  const body = new AbortController();
  const stream = await http.download(s.bucket, 'k', { signal: body.signal });
  await new Promise((resolve) => stream.once('readable', resolve));
  body.abort();
  await t.throwsAsync(collect(stream), { any: true, name: 'AbortError' });
});

/** A token source whose one token arrives (or fails) when the test says so. */
function heldToken(): {
  tokens: { headers(): Promise<Record<string, string>>; invalidate(): boolean; identity(): Promise<string | undefined> };
  give(): void;
  fail(err: Error): void;
} {
  let give!: () => void;
  let fail!: (err: Error) => void;
  const token = new Promise<Record<string, string>>((resolve, reject) => {
    give = () => resolve({ Authorization: 'Bearer held' });
    fail = reject;
  });
  return { tokens: { headers: () => token, invalidate: () => false, identity: async () => undefined }, give, fail };
}

/** A plain HTTP server that counts connections and records each request's Authorization, answering 404 JSON. */
async function countingServer(t: ExecutionContext): Promise<{ url: string; connections: () => number; auth: (string | undefined)[] }> {
  const auth: (string | undefined)[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    auth.push(req.headers.authorization);
    res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 404, message: 'No such object: b/o' } }));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections, auth };
}

/** A client of a countingServer whose token is held back until the test gives (or fails) it. */
async function heldClient(t: ExecutionContext) {
  const server = await countingServer(t);
  const held = heldToken();
  const c = new GcsHttpClient({ endpoint: server.url, tokens: held.tokens, retries: 0 });
  t.teardown(() => c.close());
  return { server, held, c };
}

test('the connection is set up while the token is still being fetched, and the request goes out with it', async (t) => {
  const { server, held, c } = await heldClient(t);
  const asked = c.getMetadata('b', 'o');
  for (let i = 0; i < 200 && server.connections() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  t.is(server.connections(), 1, 'connected before the token came');
  t.deepEqual(server.auth, [], 'nothing sent before the token came');
  held.give();
  t.is(((await t.throwsAsync(asked)) as GcsHttpError).code, 404);
  t.deepEqual(server.auth, ['Bearer held']);
});

test('a token that cannot be had is the error, and no request is sent', async (t) => {
  const { server, held, c } = await heldClient(t);
  const asked = c.getMetadata('b', 'o');
  held.fail(new AuthError('no token here', 'give one'));
  const err = await t.throwsAsync(asked);
  t.true(err instanceof AuthError, String(err));
  t.deepEqual(server.auth, []);
});

test('an abort while the token is still coming rejects at once, and the token arriving later sends nothing', async (t) => {
  const { server, held, c } = await heldClient(t);
  const controller = new AbortController();
  const asked = c.getMetadata('b', 'o', { signal: controller.signal });
  controller.abort();
  await t.throwsAsync(asked);
  held.give();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.deepEqual(server.auth, [], 'no request went out');
});
