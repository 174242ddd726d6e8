/**
 * The Storage contract on gs://, against the local GCS emulator with auth
 * enforced: the driver gets its token through the metadata-server stand-in
 * (no key file), exactly as on a GCE VM, once for each token source: asked
 * directly (the `metadataServer` option, what the agent uses there) and
 * through google-auth-library's Application Default Credentials.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { collect, storageContract } from '../contract.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

let stack: LocalStack;
let counter = 0;

test.before(async () => {
  // The contract rewrites and deletes one key in a row (as the file driver allows); Cloud Storage's one mutation per object a second is the pipeline's concern, tested in test/local/gcs/rate-limit.test.ts and test/core/catalogue/store.test.ts.
  stack = await startLocalStack({ agentRoles: ['roles/storage.objectAdmin'], objectRateLimitMs: false });
  adoptStackEnv(stack);
});
test.after.always(async () => {
  await stack?.close();
});

function fresh(): Promise<GcsStorage> {
  return Promise.resolve(new GcsStorage(`gs://${stack.bucket}/contract-${++counter}`, { endpoint: stack.emulator.url, retries: 2 }));
}

function freshDirect(): Promise<GcsStorage> {
  return Promise.resolve(
    new GcsStorage(`gs://${stack.bucket}/contract-${++counter}`, { endpoint: stack.emulator.url, retries: 2, metadataServer: { host: stack.metadata.host } }),
  );
}

storageContract(test, 'gcs', fresh);
storageContract(test, 'gcs with tokens from the metadata server', freshDirect);

test('gcs: objects live under the URL prefix in the bucket', async (t) => {
  const s = new GcsStorage(`gs://${stack.bucket}/deep/prefix/`, { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } });
  await s.write('wal/000000010000000000000001', Readable.from([Buffer.from('x')]));
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=deep/`, { headers: { Authorization: `Bearer ${stack.adminToken()}` } });
  const body = (await res.json()) as { items: { name: string }[] };
  t.deepEqual(
    body.items.map((i) => i.name),
    ['deep/prefix/wal/000000010000000000000001'],
  );
  const listed: string[] = [];
  for await (const info of s.list('')) listed.push(info.key);
  t.deepEqual(listed, ['wal/000000010000000000000001']);
});

test('gcs: a listing of more than one page comes back whole and in order', async (t) => {
  const s = await fresh();
  const keys = Array.from({ length: 1005 }, (_, i) => `wal/${String(i).padStart(24, '0')}`);
  for (let i = 0; i < keys.length; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k) => s.write(k, Readable.from([Buffer.from(k)]))));
  }
  const listed: string[] = [];
  for await (const info of s.list('wal/')) listed.push(info.key);
  t.deepEqual(listed, keys);
});

test('gcs: an upload larger than one chunk streams through in chunks', async (t) => {
  const s = new GcsStorage(`gs://${stack.bucket}/chunks-${++counter}`, { endpoint: stack.emulator.url, chunkSize: 256 * 1024 });
  const body = Buffer.alloc(1024 * 1024 + 123, 9);
  const info = await s.write('big', Readable.from([body]));
  t.is(info.size, body.length);
  t.deepEqual(await collect(await s.read('big')), body);
});

test('gcs: a replace through a resumable upload honours the generation', async (t) => {
  const s = new GcsStorage(`gs://${stack.bucket}/resumable-${++counter}`, { endpoint: stack.emulator.url, chunkSize: 256 * 1024 });
  const body = (n: number) => Buffer.alloc(600 * 1024, n);
  const first = await s.write('big', Readable.from([body(1)]));
  const second = await s.write('big', Readable.from([body(2)]), { ifGenerationMatch: first.generation });
  t.true(BigInt(second.generation) > BigInt(first.generation));
  const err = await t.throwsAsync(s.write('big', Readable.from([body(3)]), { ifGenerationMatch: first.generation }));
  t.is((err as { code?: string }).code, 'precondition_failed');
  t.deepEqual(await collect(await s.read('big')), body(2));
  // Of concurrent resumable replaces from one generation exactly one lands.
  const results = await Promise.allSettled([4, 5, 6, 7].map((n) => s.write('big', Readable.from([body(n)]), { ifGenerationMatch: second.generation })));
  const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [4 + i] : []));
  t.is(won.length, 1);
  for (const r of results) if (r.status === 'rejected') t.is((r.reason as { code?: string }).code, 'precondition_failed');
  t.deepEqual(await collect(await s.read('big')), body(won[0]));
});
