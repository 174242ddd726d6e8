import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../../agent/log.ts';
import { fetchWalFile } from '../../../agent/wal/fetch.ts';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { startLzopHelper } from '../../../core/codec/lzo/parallel.ts';
import { ClusterMismatchError, ConflictError, InvalidInputError, RepositoryMissingError, StorageError } from '../../../core/errors.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import type { ReadOptions, Storage, WriteOptions } from '../../../core/storage/types.ts';
import { REPOSITORY_KEY } from '../../../core/layout.ts';
import { parseLongPageHeader } from '../../../core/wal/header.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let work: TempDir;
let cluster: Cluster;
/** a real 1 MiB segment, copied out of pg_wal by archive_command */
let segment: string;

test.before(async () => {
  work = await makeTempDir('wal-push', { owner: 'postgres' });
  const copies = path.join(work.path, 'copies');
  cluster = await startCluster({ walSegSizeMB: 1, archiveCommand: `mkdir -p ${copies} && cp %p ${copies}/%f` });
  await cluster.query('CREATE TABLE filler AS SELECT generate_series(1, 5000) AS n');
  const name = await cluster.switchWal();
  await cluster.waitForArchived(name);
  segment = path.join(copies, name);
});

test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
});

let counter = 0;
/** A new repository, created for the cluster as gcwal repo-create does. */
async function freshRepo(): Promise<FileStorage> {
  const storage = new FileStorage(pathToFileURL(path.join(work.path, `repo-${++counter}`)).href);
  await repoCreate(storage, cluster);
  return storage;
}

const log = createLogger(new PassThrough(), 'text');

async function fetched(storage: Storage, name: string): Promise<Buffer> {
  const dir = path.join(work.path, `fetched-${++counter}`);
  await mkdir(dir);
  await fetchWalFile(storage, name, path.join(dir, 'seg'), { retries: 0, log });
  return readFile(path.join(dir, 'seg'));
}

/** Wraps a storage so its first `failures` writes under wal/ read a little of the upload and then throw `error`. */
function failingWrites(inner: Storage, failures: number, error: () => Error): Storage & { writes: number } {
  const wrapped = {
    url: inner.url,
    writes: 0,
    stat: inner.stat.bind(inner),
    read: inner.read.bind(inner),
    list: inner.list.bind(inner),
    delete: inner.delete.bind(inner),
    async write(key: string, source: Readable, options?: WriteOptions) {
      if (!key.startsWith('wal/')) return inner.write(key, source, options);
      wrapped.writes++;
      if (wrapped.writes > failures) return inner.write(key, source, options);
      for await (const _chunk of source) break;
      throw error();
    },
  };
  return wrapped;
}

const paths = [
  { how: 'read whole', wholeFileLimit: undefined },
  { how: 'scanned and streamed', wholeFileLimit: 0 },
];

for (const { how, wholeFileLimit } of paths) {
  test(`a segment ${how} is archived durably and restores byte for byte`, async (t) => {
    const storage = await freshRepo();
    const result = await pushWalFile(storage, segment, { codec: 'lzo', level: undefined, wholeFileLimit });
    const name = path.basename(segment);
    t.like(result, { status: 'archived', key: `wal/${name}`, rawSize: 1024 * 1024 });
    t.true((await fetched(storage, name)).equals(await readFile(segment)));
  });

  test(`a transient storage failure while a segment ${how} uploads is retried and leaves one object`, async (t) => {
    const storage = failingWrites(await freshRepo(), 2, () => new StorageError('upload interrupted', true));
    const retries: number[] = [];
    const result = await pushWalFile(storage, segment, { codec: 'zstd', level: undefined, wholeFileLimit, retries: 3, onRetry: (n) => retries.push(n) });
    t.is(result.status, 'archived');
    t.deepEqual(retries, [1, 2]);
    t.is(storage.writes, 3);
    t.true((await fetched(storage, path.basename(segment))).equals(await readFile(segment)));
  });
}

test('the two ways of reading a segment store the same object with the same metadata', async (t) => {
  const whole = await freshRepo();
  const streamed = await freshRepo();
  await pushWalFile(whole, segment, { codec: 'lzo', level: undefined });
  await pushWalFile(streamed, segment, { codec: 'lzo', level: undefined, wholeFileLimit: 0 });
  const key = `wal/${path.basename(segment)}`;
  const [a, b] = [await whole.stat(key), await streamed.stat(key)];
  t.deepEqual(a?.metadata, b?.metadata);
  t.is(a?.crc32c, b?.crc32c);
  t.true((await readFile(path.join(whole.root, key))).equals(await readFile(path.join(streamed.root, key))));
});

test('a segment compressed with the lzo helper thread is stored byte for byte as without it, and a stopped helper changes nothing', async (t) => {
  const alone = await freshRepo();
  const helped = await freshRepo();
  const stopped = await freshRepo();
  const helper = startLzopHelper();
  t.truthy(helper);
  t.teardown(() => helper?.stop());
  await helper!.ready;
  await pushWalFile(alone, segment, { codec: 'lzo', level: undefined });
  await pushWalFile(helped, segment, { codec: 'lzo', level: undefined, lzopHelper: helper });
  await helper!.stop();
  await pushWalFile(stopped, segment, { codec: 'lzo', level: undefined, lzopHelper: helper });
  const key = `wal/${path.basename(segment)}`;
  const expected = await readFile(path.join(alone.root, key));
  for (const repo of [helped, stopped]) {
    t.true((await readFile(path.join(repo.root, key))).equals(expected));
    t.deepEqual((await repo.stat(key))?.metadata, (await alone.stat(key))?.metadata);
  }
});

test('a permanent storage failure is not retried and stores nothing', async (t) => {
  const inner = await freshRepo();
  const storage = failingWrites(inner, 1, () => new StorageError('permission denied', false));
  await t.throwsAsync(pushWalFile(storage, segment, { codec: 'lzo', level: undefined, retries: 3 }), {
    instanceOf: StorageError,
    message: 'permission denied',
  });
  t.is(storage.writes, 1);
  t.is(await inner.stat(`wal/${path.basename(segment)}`), undefined);
});

test('pushing a segment again is success; different content under its name is a conflict', async (t) => {
  const storage = await freshRepo();
  t.is((await pushWalFile(storage, segment, { codec: 'lzo', level: undefined })).status, 'archived');
  t.is((await pushWalFile(storage, segment, { codec: 'zstd', level: undefined })).status, 'already-archived');
  const altered = path.join(work.path, `altered-${++counter}`, path.basename(segment));
  await mkdir(path.dirname(altered));
  const bytes = await readFile(segment);
  bytes[bytes.length - 1]! ^= 0xff;
  await writeFile(altered, bytes);
  await t.throwsAsync(pushWalFile(storage, altered, { codec: 'lzo', level: undefined }), {
    instanceOf: ConflictError,
    message: /already archived with different content/,
  });
});

/** Wraps a storage to count the reads of gcwal.json. */
function countingIdentityReads(inner: Storage): Storage & { identityReads: number } {
  const wrapped = {
    url: inner.url,
    identityReads: 0,
    stat: inner.stat.bind(inner),
    write: inner.write.bind(inner),
    list: inner.list.bind(inner),
    delete: inner.delete.bind(inner),
    read(key: string, options?: ReadOptions) {
      if (key === REPOSITORY_KEY) wrapped.identityReads++;
      return inner.read(key, options);
    },
  };
  return wrapped;
}

test('a push into a repository without gcwal.json is repo_missing and writes nothing, for a segment and a history file', async (t) => {
  const dir = path.join(work.path, `repo-${++counter}`);
  const storage = new FileStorage(pathToFileURL(dir).href);
  const history = path.join(work.path, `history-${counter}`, '00000002.history');
  await mkdir(path.dirname(history));
  await writeFile(history, '1\t0/3000000\tno recovery target specified\n');
  for (const file of [segment, history]) {
    await t.throwsAsync(pushWalFile(storage, file, { codec: 'lzo', level: undefined }), { instanceOf: RepositoryMissingError, message: /has no gcwal\.json/ });
  }
  await mkdir(dir);
  await t.throwsAsync(pushWalFile(storage, segment, { codec: 'lzo', level: undefined }), { instanceOf: RepositoryMissingError });
  t.deepEqual(await readdir(dir), [], 'an empty directory stays empty');
});

test('the repository is asked for its identity while the file is still being opened, and a local failure is still the one reported', async (t) => {
  const storage = countingIdentityReads(await freshRepo());
  // A FIFO under a segment's name: opening it for reading waits until a writer comes.
  const dir = path.join(work.path, `fifo-${++counter}`);
  await mkdir(dir);
  const fifo = path.join(dir, path.basename(segment));
  await promisify(execFile)('mkfifo', [fifo]);
  const pushing = pushWalFile(storage, fifo, { codec: 'lzo', level: undefined });
  pushing.catch(() => {});
  const deadline = Date.now() + 10_000;
  while (storage.identityReads === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  const readsBeforeOpen = storage.identityReads;
  // Let the open return: the file turns out not to be a regular file.
  await (await open(fifo, 'w')).close();
  t.is(readsBeforeOpen, 1, 'gcwal.json was read before the file could be opened');
  await t.throwsAsync(pushing, { instanceOf: InvalidInputError, message: /is not a regular file/ });
});

test('pushes sharing an identity memo read gcwal.json once; a memo of another cluster is checked against the repository', async (t) => {
  const storage = countingIdentityReads(await freshRepo());
  const identity = {};
  t.is((await pushWalFile(storage, segment, { codec: 'lzo', level: undefined, identity })).status, 'archived');
  t.is(storage.identityReads, 1);
  t.is((await pushWalFile(storage, segment, { codec: 'lzo', level: undefined, identity })).status, 'already-archived');
  t.is(storage.identityReads, 1, 'the second push trusted the memo');
  const { systemIdentifier } = parseLongPageHeader(await readFile(segment));
  t.deepEqual(identity, { confirmed: { systemIdentifier, walSegmentSize: 1024 * 1024 } });

  // A segment of another cluster (its system identifier changed) is refused even with the memo filled.
  const foreign = path.join(work.path, `foreign-${++counter}`, path.basename(segment));
  await mkdir(path.dirname(foreign));
  const bytes = await readFile(segment);
  bytes.writeBigUInt64LE(bytes.readBigUInt64LE(24) ^ 1n, 24);
  await writeFile(foreign, bytes);
  await t.throwsAsync(pushWalFile(storage, foreign, { codec: 'lzo', level: undefined, identity }), { instanceOf: ClusterMismatchError });
  t.is(storage.identityReads, 2);
  t.deepEqual(identity, { confirmed: { systemIdentifier, walSegmentSize: 1024 * 1024 } }, 'a failed check does not change the memo');

  // A memo naming another cluster does not vouch for this one: the repository is read again.
  const stale = { confirmed: { systemIdentifier: '1', walSegmentSize: 1024 * 1024 } };
  t.is((await pushWalFile(storage, segment, { codec: 'lzo', level: undefined, identity: stale })).status, 'already-archived');
  t.is(storage.identityReads, 3);
  t.deepEqual(stale, { confirmed: { systemIdentifier, walSegmentSize: 1024 * 1024 } });
});
