import { access, readdir, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { UsageError } from '../../core/errors.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { exec } from '../../local/testkit/exec.ts';
import { makeTempDir } from '../../local/testkit/tmp.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PROBE = path.join(ROOT, 'test/local/stack-probe.ts');

interface ProbeResult {
  bucket: string;
  name: string;
  client?: string;
  projectId?: string;
  token?: string;
  upload?: number;
  read?: number;
  list?: number;
  delete?: number;
  anonymous?: number;
  error?: string;
}

/** Run the probe with nothing but the stack's env, an empty HOME and gcloud config. */
async function runProbe(t: { teardown(fn: () => unknown): void }, env: Readonly<Record<string, string>>): Promise<ProbeResult> {
  const home = await makeTempDir('stack-home');
  t.teardown(() => home.cleanup());
  const result = await exec(process.execPath, ['--import=tsx', PROBE], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home.path, CLOUDSDK_CONFIG: home.path, ...env },
    cwd: ROOT,
    timeoutMs: 60_000,
  });
  if (result.code !== 0) throw new Error(`probe exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

function portOf(url: string): number {
  return Number(new URL(url.includes('://') ? url : `http://${url}`).port);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

async function adminGet(stack: LocalStack, urlPath: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.emulator.url}${urlPath}`, { headers: { Authorization: `Bearer ${stack.adminToken()}` } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function started(t: { teardown(fn: () => unknown): void }, options: Parameters<typeof startLocalStack>[0] = {}): Promise<LocalStack> {
  const stack = await startLocalStack(options);
  t.teardown(() => stack.close());
  return stack;
}

test('the default stack gives the agent the env it needs, and nothing that bypasses detection', async (t) => {
  const stack = await started(t);
  t.is(stack.bucket, 'gcwal-local');
  t.is(stack.projectId, 'gcwal-local');
  t.is(stack.agentIdentity, 'gcwal-agent@gcwal-local.iam.gserviceaccount.com');
  t.deepEqual(stack.env, {
    GCWAL_REPO: 'gs://gcwal-local',
    STORAGE_EMULATOR_HOST: stack.emulator.url,
    GCWAL_GCS_ENDPOINT: stack.emulator.url,
    GCE_METADATA_HOST: stack.metadata.host,
    GOOGLE_CLOUD_PROJECT: 'gcwal-local',
  });
  t.regex(stack.env.STORAGE_EMULATOR_HOST, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.false('METADATA_SERVER_DETECTION' in stack.env);
});

test('with only that env, keyless ADC reaches the bucket as the agent, who may create and read but not delete', async (t) => {
  const stack = await started(t);
  const result = await runProbe(t, stack.env);
  t.is(result.error, undefined);
  t.is(result.client, 'Compute');
  t.is(result.projectId, 'gcwal-local');
  t.is(stack.authority.identify(result.token!), stack.agentIdentity);
  t.is(result.upload, 200);
  t.is(result.read, 200);
  t.is(result.list, 200);
  t.is(result.delete, 403, 'the agent never deletes');
  t.is(result.anonymous, 401);
  const seen = await adminGet(stack, `/storage/v1/b/gcwal-local/o/${encodeURIComponent(result.name)}`);
  t.is(seen.status, 200);
  t.is(seen.body.size, '5');
});

test('agentRoles replaces the agent grants', async (t) => {
  const stack = await started(t, { agentRoles: ['roles/storage.objectViewer'] });
  t.deepEqual(stack.authority.permissionsOf(stack.agentIdentity, stack.bucket), ['storage.objects.get', 'storage.objects.list']);
  t.false(stack.authority.allowed(stack.agentIdentity, 'storage.objects.create', stack.bucket));
  t.false(stack.authority.allowed(stack.agentIdentity, 'storage.objects.list', 'another-bucket'), 'grants are on the stack bucket only');
});

test('adminToken is an admin bearer token, reused while valid and replaced once revoked', async (t) => {
  const stack = await started(t);
  const first = stack.adminToken();
  t.is(stack.adminToken(), first);
  t.is(stack.authority.identify(first), stack.adminIdentity);
  t.true(stack.authority.allowed(stack.adminIdentity, 'storage.buckets.get', stack.bucket));
  const bucket = await adminGet(stack, '/storage/v1/b/gcwal-local');
  t.is(bucket.status, 200);
  t.is(bucket.body.name, 'gcwal-local');
  stack.authority.revoke(first);
  t.not(stack.adminToken(), first);
  t.is((await adminGet(stack, '/storage/v1/b/gcwal-local')).status, 200);
});

test('bucket, project, prefix and retention options shape the stack', async (t) => {
  const stack = await started(t, { bucket: 'my-archive', projectId: 'proj-7', prefix: '/prod/db1/', retentionPeriodSeconds: 86400 });
  t.is(stack.env.GCWAL_REPO, 'gs://my-archive/prod/db1');
  t.is(stack.env.GOOGLE_CLOUD_PROJECT, 'proj-7');
  t.is(stack.agentIdentity, 'gcwal-agent@proj-7.iam.gserviceaccount.com');
  const bucket = await adminGet(stack, '/storage/v1/b/my-archive');
  t.is(bucket.status, 200);
  t.is(bucket.body.retentionPolicy?.retentionPeriod, '86400');
  t.is((await adminGet(stack, '/storage/v1/b/gcwal-local')).status, 404);
});

for (const [name, options, pattern] of [
  ['an invalid bucket name', { bucket: 'Bad_Bucket' }, /invalid bucket name "Bad_Bucket"/],
  ['a too short bucket name', { bucket: 'ab' }, /invalid bucket name/],
  ['a prefix with an empty segment', { prefix: 'a//b' }, /prefix "a\/\/b" has an empty path segment/],
] as const) {
  test(`${name} is refused before anything starts`, async (t) => {
    const err = await t.throwsAsync(startLocalStack(options), { instanceOf: UsageError });
    t.regex(err.message, pattern);
  });
}

test('close stops both servers, removes the temp dir it made, and is idempotent', async (t) => {
  const stack = await startLocalStack();
  const ports = [portOf(stack.emulator.url), portOf(stack.metadata.host)];
  t.true((await stat(stack.dir)).isDirectory());
  t.is((await stat(stack.dir)).mode & 0o777, 0o755);
  await Promise.all([stack.close(), stack.close()]);
  await stack.close();
  for (const port of ports) t.true(await refused(port), `port ${port} closed`);
  await t.throwsAsync(access(stack.dir));
});

test('a given dir is created if missing and kept with its data after close', async (t) => {
  const tmp = await makeTempDir('stack-dir');
  t.teardown(() => tmp.cleanup());
  const dir = path.join(tmp.path, 'state', 'nested');
  const stack = await startLocalStack({ dir });
  t.is(stack.dir, dir);
  const result = await runProbe(t, stack.env).finally(() => stack.close());
  t.is(result.upload, 200);
  t.true((await readdir(dir)).length > 0, 'the emulator kept its data there');
  t.true((await readdir(dir, { recursive: true })).length > 1);
});

test('with https the agent env points at TLS and carries the CA, and ADC still works', async (t) => {
  const stack = await started(t, { https: true });
  t.regex(stack.env.STORAGE_EMULATOR_HOST, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.is(stack.env.GCWAL_GCS_ENDPOINT, stack.env.STORAGE_EMULATOR_HOST);
  const ca = stack.emulator.caCertPath;
  if (ca === undefined) return t.fail('the emulator reported no CA certificate');
  t.is(stack.env.GCWAL_GCS_CA_FILE, ca);
  t.false('NODE_EXTRA_CA_CERTS' in stack.env, 'gcwal takes the CA from its own setting');
  await access(ca);
  // The probe is the client library alone, which trusts what Node does.
  const result = await runProbe(t, { ...stack.env, NODE_EXTRA_CA_CERTS: ca });
  t.is(result.error, undefined);
  t.is(result.upload, 200);
  t.is(result.list, 200);
  t.is(result.delete, 403);
});

test('two stacks side by side share no tokens', async (t) => {
  const a = await started(t);
  const b = await started(t);
  t.not(a.emulator.url, b.emulator.url);
  t.not(a.metadata.host, b.metadata.host);
  t.is(b.authority.identify(a.adminToken()), undefined);
  const res = await fetch(`${b.emulator.url}/storage/v1/b/gcwal-local`, { headers: { Authorization: `Bearer ${a.adminToken()}` } });
  t.is(res.status, 401);
});
