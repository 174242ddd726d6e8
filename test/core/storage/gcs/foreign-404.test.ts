/**
 * A 404 that does not come from Cloud Storage (a proxy in the way, a path in
 * GCWAL_GCS_ENDPOINT that is not the API root) says nothing about the
 * object: on every path of the gs:// driver (stat, read, delete through its
 * own client, listing and delete through the client library) it is a
 * StorageError whose hint names GCWAL_GCS_ENDPOINT, never "no such object",
 * which wal-fetch would report as "not in the archive" and end a recovery
 * early. Cloud Storage's own answers for a missing object (its JSON error,
 * and the text of a media download) still read as absent.
 */
import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { NotFoundError, StorageError } from '../../../../core/errors.ts';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import type { Storage } from '../../../../core/storage/types.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

let stack: LocalStack;
let proxy: string;
let closeProxy: () => Promise<void>;

test.before(async () => {
  stack = await startLocalStack({ agentRoles: ['roles/storage.objectAdmin'] });
  // STORAGE_EMULATOR_HOST stays set to the emulator: the driver's endpoint must win over it on the client library's paths too.
  adoptStackEnv(stack);
  // A reverse proxy with no route for the API: nginx's page, to every request.
  const server = createServer((req, res) => {
    req.resume();
    res
      .writeHead(404, { 'Content-Type': 'text/html' })
      .end(
        '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeProxy = () => new Promise((resolve) => server.close(() => resolve()));
});
test.after.always(async () => {
  await closeProxy?.();
  await stack?.close();
});

function repo(endpoint: string): GcsStorage {
  return new GcsStorage(`gs://${stack.bucket}/foreign`, { endpoint, metadataServer: { host: stack.metadata.host }, retries: 1, maxRetryDelaySeconds: 0.05 });
}

/** Every call of the driver that could read a 404 as "absent". */
const calls: [string, (s: Storage) => Promise<unknown>][] = [
  ['stat', (s) => s.stat('wal/000000010000000000000001')],
  ['read', (s) => s.read('wal/000000010000000000000001')],
  [
    'list',
    async (s) => {
      for await (const _ of s.list('wal/')) break;
    },
  ],
  ['delete', (s) => s.delete('wal/000000010000000000000001')],
];

const endpoints: [string, () => string][] = [
  ['a proxy that answers 404 to everything', () => proxy],
  ['an endpoint with a path that is not the API root', () => `${stack.emulator.url}/storage/v1`],
];

for (const [where, endpoint] of endpoints) {
  for (const [op, call] of calls) {
    test(`${op} through ${where} is a storage error naming GCWAL_GCS_ENDPOINT, never "not found"`, async (t) => {
      const err = await t.throwsAsync(call(repo(endpoint())), { instanceOf: StorageError });
      t.false(err instanceof NotFoundError);
      t.false((err as StorageError).transient);
      t.regex(err!.message, /HTTP 404 from something other than Cloud Storage/);
      t.regex((err as StorageError).hint, /GCWAL_GCS_ENDPOINT/);
    });
  }
}

test("Cloud Storage's own answers for a missing object still mean absent: its JSON error on stat, its text on a media download", async (t) => {
  const s = repo(stack.emulator.url);
  await s.write('present', Readable.from([Buffer.from('x')]));
  t.is(await s.stat('absent'), undefined);
  await t.throwsAsync(s.read('absent'), { instanceOf: NotFoundError });
  await s.delete('absent');
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o/foreign%2Fabsent?alt=media`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
  });
  t.is(res.status, 404);
  t.is(await res.text(), `No such object: ${stack.bucket}/foreign/absent`, 'the emulator answers a media download as GCS does');
});
