/**
 * The launcher's trust store, end to end: the installed gcwal, as
 * restore_command runs it, reaching the local stack over HTTPS with the
 * emulator's CA only in a hashed certificate directory (SSL_CERT_DIR), as a
 * CA installed on the host would be. By default (the system store) the
 * connection is trusted; with GCWAL_CA_STORE=node (Node's bundled roots) the
 * same call is refused, and reported as a storage error, not as "not found".
 */
import test from 'ava';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let agent: InstalledAgent;
let stack: LocalStack;
let certs: TempDir;

test.before(async () => {
  agent = await installAgent();
  stack = await startLocalStack({ https: true, prefix: 'trust' });
  // A repository that exists, so that "no such file" is the answer about the file.
  const { GCWAL_REPO, GCWAL_GCS_ENDPOINT, GCWAL_GCS_CA_FILE } = stack.env;
  const storage = new GcsStorage(GCWAL_REPO!, { endpoint: GCWAL_GCS_ENDPOINT, caFile: GCWAL_GCS_CA_FILE, metadataServer: { host: stack.metadata.host } });
  await createRepositoryIdentity(storage, { systemIdentifier: '7300000000000000002', walSegmentSize: 16 * 1024 * 1024 });
  certs = await makeTempDir('trust-certs');
  await copyFile(stack.env.GCWAL_GCS_CA_FILE!, path.join(certs.path, 'gcwal-emulator.pem'));
  // The hash links OpenSSL looks certificates up by, as update-ca-certificates makes them.
  await execOk('openssl', ['rehash', certs.path]);
});

test.after.always(async () => {
  await stack?.close();
  await certs?.cleanup();
  await agent?.cleanup();
});

/** wal-fetch of a segment the repository does not have, trusting only what SSL_CERT_DIR holds. */
function fetchMissing(store: 'system' | 'node') {
  const { GCWAL_GCS_CA_FILE: _ca, ...env } = stack.env;
  return runGcwal(agent.command, ['wal-fetch', '000000010000000000000009', path.join(certs.path, 'out')], {
    env: { ...env, GCWAL_CA_STORE: store, SSL_CERT_DIR: certs.path, SSL_CERT_FILE: undefined, NODE_EXTRA_CA_CERTS: undefined, GCWAL_RETRIES: '0' },
  });
}

test('with the system store the certificate is found in SSL_CERT_DIR and the archive answers "no such file"', async (t) => {
  const r = await fetchMissing('system');
  t.is(r.code, 1, r.stderr);
});

test("with Node's bundled roots the same endpoint is refused, as a storage error", async (t) => {
  const r = await fetchMissing('node');
  t.not(r.code, 0);
  t.not(r.code, 1, 'not "not found"');
  t.regex(r.stderr, /certificate/i);
});
