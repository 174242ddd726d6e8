/**
 * GCWAL_GCS_CA_FILE (GcsStorageOptions.caFile): the gs:// driver trusts the
 * emulator's own certificate over HTTPS on every path (its own client's
 * reads and uploads, the client library's listings and deletes) without
 * NODE_EXTRA_CA_CERTS naming it, refuses the endpoint without it, and
 * reports an unusable file as a usage error.
 */
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NotFoundError, UsageError } from '../../../../core/errors.ts';
import { GcsStorage } from '../../../../core/storage/gcs/storage.ts';
import { STREAM_FROM } from '../../../../core/storage/gcs/write.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { bytes } from '../../../local/gcs/harness.ts';
import { makeTempDir } from '../../../../local/testkit/tmp.ts';
import { collect } from '../contract.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

let s: LocalStack;

test.before(async () => {
  // Writes then deletes one key at once; the per-object rate is not what this file tests.
  s = await startLocalStack({ https: true, agentRoles: ['roles/storage.objectAdmin'], objectRateLimitMs: false });
  adoptStackEnv(s);
  // The emulator's certificate must come from caFile alone.
  delete process.env.NODE_EXTRA_CA_CERTS;
});
test.after.always(async () => {
  await s?.close();
});

function repo(caFile: string | undefined, prefix: string): GcsStorage {
  // retries 0: a certificate refused anywhere must fail the call, not be retried into success.
  return new GcsStorage(`gs://${s.bucket}/${prefix}`, {
    endpoint: s.env.GCWAL_GCS_ENDPOINT,
    caFile,
    metadataServer: { host: s.metadata.host },
    retries: 0,
    maxRetryDelaySeconds: 1,
    chunkSize: 256 * 1024,
  });
}

test.serial('with the CA file every path reaches the https endpoint: its own client for reads and uploads, the library for listings and deletes', async (t) => {
  t.regex(s.env.GCWAL_GCS_ENDPOINT!, /^https:/);
  const storage = repo(s.env.GCWAL_GCS_CA_FILE, 'ca');
  t.is(await storage.stat('none'), undefined);
  const small = bytes(1000, 1);
  await storage.write('small', Readable.from([small]));
  const streamed = bytes(STREAM_FROM + 512 * 1024, 2);
  await storage.write('streamed', Readable.from([streamed.subarray(0, STREAM_FROM), streamed.subarray(STREAM_FROM)]));
  t.true((await collect(await storage.read('streamed'))).equals(streamed));
  const listed: string[] = [];
  for await (const info of storage.list('')) listed.push(info.key);
  t.deepEqual(listed.sort(), ['small', 'streamed']);
  await storage.delete('small');
  t.is(await storage.stat('small'), undefined);

  // Answers slower than the streaming threshold: a write over the chunk size goes up in chunks.
  const slow = repo(s.env.GCWAL_GCS_CA_FILE, 'ca-slow');
  const log: string[] = [];
  s.emulator.setFaults({ rate: 1, kinds: ['slow'], slowMs: 30, match: (method, target) => (log.push(`${method} ${target}`), method === 'GET') });
  await slow.stat('none');
  const large = bytes(700 * 1024, 3);
  await slow.write('large', Readable.from([large]));
  t.true(
    log.some((line) => line.startsWith('PUT ') && line.includes('upload_id=')),
    log.join('\n'),
  );
  s.emulator.setFaults({ rate: 0, kinds: [] });
  t.true((await collect(await slow.read('large'))).equals(large));
});

test.serial('without the CA file the endpoint is refused, and that is an error, never "not found"', async (t) => {
  const err = await t.throwsAsync(repo(undefined, 'none').stat('anything'));
  t.false(err instanceof NotFoundError);
  t.regex(String(err?.message) + String((err as { cause?: Error })?.cause?.message ?? ''), /certificate|self.signed|TLS/i);
});

test.serial('a CA file that cannot be read or holds no certificate is a usage error naming it', async (t) => {
  const dir = await makeTempDir('gcs-ca');
  t.teardown(() => dir.cleanup());
  const missing = path.join(dir.path, 'missing.pem');
  t.throws(() => repo(missing, 'x'), { instanceOf: UsageError, message: new RegExp(`cannot read the CA file ${missing}.*ENOENT`) });
  const junk = path.join(dir.path, 'junk.pem');
  await writeFile(junk, 'not a certificate\n');
  t.throws(() => repo(junk, 'x'), { instanceOf: UsageError, message: /holds no PEM certificate/ });
});
