import test from 'ava';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../../agent/log.ts';
import { fetchWalFile } from '../../../agent/wal/fetch.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { AuthError, RepositoryMissingError, StorageError } from '../../../core/errors.ts';
import { Meta } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { Storage } from '../../../core/storage/types.ts';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-fetch-'));
  dirs.push(dir);
  return dir;
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const name = '000000010000000000000007';
const body = Buffer.alloc(1024 * 1024, 'wal');
const log = createLogger(new PassThrough(), 'text');

async function repoWithSegment(): Promise<FileStorage> {
  const s = new FileStorage(pathToFileURL(await tmp()).href);
  await createRepositoryIdentity(s, { systemIdentifier: '7300000000000000001', walSegmentSize: 1024 * 1024 });
  await s.write(`wal/${name}`, Readable.from([body]).pipe(getCodec('lzo').compressor()), {
    metadata: { [Meta.codec]: 'lzo', [Meta.rawSize]: String(body.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(body)) },
  });
  return s;
}

/** Wraps a storage so its first `failures` stat calls throw `error`. */
function failing(inner: Storage, failures: number, error: () => Error): Storage & { calls: number } {
  const wrapped = {
    url: inner.url,
    calls: 0,
    async stat(key: string, o?: { signal?: AbortSignal }) {
      wrapped.calls++;
      if (wrapped.calls <= failures) throw error();
      return inner.stat(key, o);
    },
    read: inner.read.bind(inner),
    write: inner.write.bind(inner),
    list: inner.list.bind(inner),
    delete: inner.delete.bind(inner),
  };
  return wrapped;
}

test('a segment is restored byte for byte', async (t) => {
  const s = await repoWithSegment();
  const dir = await tmp();
  t.is(await fetchWalFile(s, name, join(dir, 'RECOVERYXLOG'), { retries: 0, log }), 'fetched');
  t.deepEqual(await readFile(join(dir, 'RECOVERYXLOG')), body);
  t.deepEqual(await readdir(dir), ['RECOVERYXLOG']);
});

test('a segment is fetched without reading gcwal.json; only a missing one confirms the repository exists first', async (t) => {
  const inner = await repoWithSegment();
  const keys: string[] = [];
  const s: Storage = {
    url: inner.url,
    stat: (k, o) => (keys.push(`stat ${k}`), inner.stat(k, o)),
    read: (k, o) => (keys.push(`read ${k}`), inner.read(k, o)),
    write: inner.write.bind(inner),
    list: inner.list.bind(inner),
    delete: inner.delete.bind(inner),
  };
  const dir = await tmp();
  t.is(await fetchWalFile(s, name, join(dir, 'RECOVERYXLOG'), { retries: 0, log }), 'fetched');
  t.deepEqual(keys, [`stat wal/${name}`, `read wal/${name}`]);
  keys.length = 0;
  t.is(await fetchWalFile(s, '000000010000000000000008', join(dir, 'RECOVERYXLOG2'), { retries: 0, log }), 'not-found');
  t.deepEqual(keys, ['stat wal/000000010000000000000008', 'read gcwal.json']);
});

test('a missing segment of a repository without gcwal.json is repo_missing, never not-found', async (t) => {
  for (const root of [join(await tmp(), 'unmounted'), await tmp()]) {
    const s = new FileStorage(pathToFileURL(root).href);
    const dir = await tmp();
    const err = await t.throwsAsync(fetchWalFile(s, name, join(dir, 'RECOVERYXLOG'), { retries: 2, log, backoffMs: 1 }));
    t.true(err instanceof RepositoryMissingError, String(err));
    t.is((err as RepositoryMissingError).exitCode, 13);
    t.deepEqual(await readdir(dir), []);
  }
});

test('a missing segment is not-found and writes nothing', async (t) => {
  const s = await repoWithSegment();
  const dir = await tmp();
  t.is(await fetchWalFile(s, '000000010000000000000008', join(dir, 'RECOVERYXLOG'), { retries: 0, log }), 'not-found');
  t.deepEqual(await readdir(dir), []);
});

test('transient storage failures are retried until the fetch succeeds', async (t) => {
  const s = failing(await repoWithSegment(), 2, () => new StorageError('connection reset', true));
  const dir = await tmp();
  t.is(await fetchWalFile(s, name, join(dir, 'X'), { retries: 3, log, backoffMs: 1 }), 'fetched');
  t.is(s.calls, 3);
});

test('transient failures that outlast the retries are thrown, never reported as not-found', async (t) => {
  const s = failing(await repoWithSegment(), 100, () => new StorageError('503 from storage', true));
  const dir = await tmp();
  const err = await t.throwsAsync(fetchWalFile(s, name, join(dir, 'X'), { retries: 2, log, backoffMs: 1 }));
  t.is((err as { code?: string }).code, 'storage');
  t.is(s.calls, 3);
  t.deepEqual(await readdir(dir), []);
});

test('an auth failure is thrown at once as an auth error', async (t) => {
  const s = failing(await repoWithSegment(), 100, () => new AuthError('permission denied', 'grant storage.objects.get'));
  const err = await t.throwsAsync(fetchWalFile(s, name, join(tmpdir(), 'X'), { retries: 5, log, backoffMs: 1 }));
  t.is((err as { code?: string }).code, 'auth');
  t.is(s.calls, 1);
});

test('a name that is not WAL is refused before touching storage', async (t) => {
  const s = failing(await repoWithSegment(), 0, () => new Error('unused'));
  await t.throwsAsync(fetchWalFile(s, '../../etc/passwd', join(tmpdir(), 'X'), { retries: 0, log }), { message: /is not a WAL file name/ });
  t.is(s.calls, 0);
});
