/**
 * A gs:// repository whose bucket does not exist (a typo in GCWAL_REPO): GCS
 * answers 404 `notFound` for it just as for a missing object, and the driver
 * must tell the two apart. Every call on the missing bucket fails with
 * RepositoryMissingError (exit 13) naming the bucket; "not found" (undefined,
 * NotFoundError, an empty catalogue, no identity) is kept for objects that
 * are really absent from a bucket that exists.
 *
 * The agent holds its roles project-wide here, as with a project-level IAM
 * binding: GCS (and the emulator) answer 403 before 404 to an identity that
 * has no permission on the bucket name at all.
 */
import test, { type ExecutionContext } from 'ava';
import { Readable } from 'node:stream';
import { readCatalogue } from '../../../../core/catalogue/store.ts';
import { ExitCode, NotFoundError, RepositoryMissingError, StorageError } from '../../../../core/errors.ts';
import { readRepositoryIdentity } from '../../../../core/repository.ts';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import type { Storage } from '../../../../core/storage/types.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { collect } from '../contract.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

const MISSING = 'no-such-bucket';

let stack: LocalStack;
let counter = 0;

test.before(async () => {
  stack = await startLocalStack();
  stack.authority.grant(stack.agentIdentity, 'roles/storage.objectAdmin');
  adoptStackEnv(stack);
});
test.after.always(async () => {
  await stack?.close();
});

function missingBucket(): GcsStorage {
  return new GcsStorage(`gs://${MISSING}/repo-${++counter}`, { endpoint: stack.emulator.url, retries: 1, maxRetryDelaySeconds: 1 });
}

function existingBucket(): GcsStorage {
  return new GcsStorage(`gs://${stack.bucket}/repo-${++counter}`, { endpoint: stack.emulator.url, retries: 1, maxRetryDelaySeconds: 1 });
}

async function listAll(s: Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of s.list(prefix)) keys.push(info.key);
  return keys;
}

/** The error a missing bucket must produce, whatever the call. */
function assertBucketMissing(t: ExecutionContext, err: unknown): void {
  t.false(err instanceof NotFoundError, 'a missing bucket is not a missing object');
  t.true(err instanceof RepositoryMissingError, String(err));
  t.false(err instanceof StorageError, 'not retried: retrying cannot create the bucket');
  const e = err as RepositoryMissingError;
  t.is(e.code, 'repo_missing');
  t.is(e.exitCode, ExitCode.repoMissing);
  t.regex(e.message, new RegExp(`bucket ${MISSING} does not exist`));
  t.regex(e.hint, /GCWAL_REPO/);
}

const calls: [string, (s: Storage) => Promise<unknown>][] = [
  ['stat', (s) => s.stat('wal/000000010000000000000001')],
  ['read', (s) => s.read('wal/000000010000000000000001').then(collect)],
  ['a ranged read', (s) => s.read('wal/000000010000000000000001', { start: 0, end: 99 }).then(collect)],
  ['list', (s) => listAll(s, 'wal/')],
  ['delete', (s) => s.delete('wal/000000010000000000000001')],
  ['a conditional delete', (s) => s.delete('wal/000000010000000000000001', { ifGenerationMatch: '5' })],
  ['write', (s) => s.write('wal/000000010000000000000001', Readable.from([Buffer.from('x')]))],
];

for (const [what, call] of calls) {
  test(`${what} on a bucket that does not exist throws a storage error naming the bucket`, async (t) => {
    const err = await t.throwsAsync(call(missingBucket()));
    assertBucketMissing(t, err);
  });
}

test('in a bucket that exists the same missing object is still "not found"', async (t) => {
  const s = existingBucket();
  t.is(await s.stat('wal/000000010000000000000001'), undefined);
  const err = await t.throwsAsync(s.read('wal/000000010000000000000001'));
  t.true(err instanceof NotFoundError, String(err));
  t.deepEqual(await listAll(s, 'wal/'), []);
  await t.notThrowsAsync(s.delete('wal/000000010000000000000001'));
  await t.notThrowsAsync(s.delete('wal/000000010000000000000001', { ifGenerationMatch: '5' }));
});

test('an object whose name reads like the bucket message is still only a missing object', async (t) => {
  // GCS's object message carries the name: "No such object: <bucket>/<name>".
  const s = existingBucket();
  const key = 'The specified bucket does not exist.';
  t.is(await s.stat(key), undefined);
  t.true((await t.throwsAsync(s.read(key))) instanceof NotFoundError);
});

test('the catalogue of a repository on a missing bucket cannot be read, rather than being empty', async (t) => {
  assertBucketMissing(t, await t.throwsAsync(readCatalogue(missingBucket())));
  const fresh = await readCatalogue(existingBucket());
  t.is(fresh.generation, '0', 'a missing catalogue in an existing bucket is empty');
});

test('the identity of a repository on a missing bucket cannot be read, rather than being absent', async (t) => {
  assertBucketMissing(t, await t.throwsAsync(readRepositoryIdentity(missingBucket())));
  t.is(await readRepositoryIdentity(existingBucket()), undefined, 'a repository never pushed to has no identity');
});
