process.env.METADATA_SERVER_DETECTION = 'none';

import test from 'ava';
import { Storage } from '@google-cloud/storage';
import type { AccessControl, Permission } from '../../../local/auth/types.ts';
import { route, ROUTE_TABLE, type Op } from '../../../local/gcs/router.ts';
import { logRequests, raw, startTestEmulator } from './harness.ts';

const ALL: Permission[] = [
  'storage.buckets.get',
  'storage.buckets.list',
  'storage.buckets.create',
  'storage.buckets.update',
  'storage.buckets.delete',
  'storage.objects.create',
  'storage.objects.delete',
  'storage.objects.get',
  'storage.objects.list',
  'storage.objects.update',
];

/** A tiny authority: tokens name identities, identities hold permissions (on every bucket). */
function authority(grants: Record<string, { token: string; permissions: Permission[] }>): AccessControl & { identified: number } {
  const byToken = new Map(Object.entries(grants).map(([identity, g]) => [g.token, identity]));
  const held = new Map(Object.entries(grants).map(([identity, g]) => [identity, new Set(g.permissions)]));
  const access = {
    identified: 0,
    identify(token: string) {
      access.identified++;
      return byToken.get(token);
    },
    allowed: (identity: string, permission: Permission) => held.get(identity)?.has(permission) ?? false,
  };
  return access;
}

const GRANTS = {
  'admin@test.iam.gserviceaccount.com': { token: 'admin-token', permissions: ALL },
  'reader@test.iam.gserviceaccount.com': { token: 'reader-token', permissions: ['storage.objects.get', 'storage.objects.list'] as Permission[] },
  'writer@test.iam.gserviceaccount.com': {
    token: 'writer-token',
    permissions: ['storage.objects.create', 'storage.objects.get', 'storage.objects.list'] as Permission[],
  },
};

/**
 * A Node client that sends `token` on every request. The client skips auth
 * for a custom apiEndpoint, and `useAuthWithCustomEndpoint` does not reach
 * the resumable uploader that save()/createWriteStream() use (their POST and
 * PUTs go out without Authorization). A request interceptor does: its headers
 * are applied to JSON and multipart requests and, through
 * `customRequestOptions`, to every resumable POST and PUT. (Note: an
 * OAuth2Client from google-auth-library 10 given as `authClient` to storage
 * 7.22 adds no header at all: v10 returns fetch `Headers`, which storage's
 * v9 GoogleAuth spreads into an empty object.)
 */
function clientWithToken(url: string, token: string): Storage {
  const storage = new Storage({ apiEndpoint: url, projectId: 'test' });
  storage.interceptors.push({
    request: (options) => {
      options.headers = { ...options.headers, Authorization: `Bearer ${token}` };
      // The client always passes `uri` (the typings allow `url` instead).
      return options as typeof options & { uri: string };
    },
  });
  return storage;
}

const code = (err: unknown) => (err as { code?: number }).code;

test('the token interceptor carries Authorization on every request, resumable PUTs included', async (t) => {
  const access = authority(GRANTS);
  const { emu } = await startTestEmulator(t, { access });
  await emu.createBucket('bkt');
  const log = logRequests(emu);
  const file = clientWithToken(emu.url, 'admin-token').bucket('bkt').file('obj');
  await new Promise<void>((resolve, reject) => {
    const stream = file.createWriteStream({ chunkSize: 256 * 1024, preconditionOpts: { ifGenerationMatch: 0 } });
    stream.on('finish', resolve).on('error', reject);
    stream.end(Buffer.alloc(600 * 1024, 1));
  });
  await file.save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }).catch(() => undefined);
  await file.getMetadata();
  await file.download();
  await file.delete();
  t.true(log.filter((line) => line.includes('upload_id=')).length >= 3, log.join('\n'));
  t.is(access.identified, log.length, log.join('\n'));
});

test('a request without a token is 401 required and an unknown token 401 Invalid Credentials', async (t) => {
  const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
  await emu.createBucket('bkt');
  const anonymous = await raw(`${emu.url}/storage/v1/b/bkt/o`);
  t.is(anonymous.status, 401);
  t.is(anonymous.json().error.errors[0].reason, 'required');
  t.regex(anonymous.json().error.message, /^Anonymous caller does not have storage\.objects\.list access/);
  const unknown = await raw(`${emu.url}/storage/v1/b/bkt/o`, { headers: { Authorization: 'Bearer nope' } });
  t.is(unknown.status, 401);
  t.is(unknown.json().error.message, 'Invalid Credentials');
  // pgBackRest sends the bare token: accepted too.
  const bare = await raw(`${emu.url}/storage/v1/b/bkt/o`, { headers: { Authorization: 'reader-token' } });
  t.is(bare.status, 200);
  const err = await t.throwsAsync(new Storage({ apiEndpoint: emu.url, projectId: 'test' }).bucket('bkt').getFiles());
  t.is(code(err), 401);
});

test("an identity lacking storage.objects.delete gets 403 with GCS's message", async (t) => {
  const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
  await emu.createBucket('bkt');
  await clientWithToken(emu.url, 'admin-token')
    .bucket('bkt')
    .file('obj')
    .save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  const reader = clientWithToken(emu.url, 'reader-token').bucket('bkt').file('obj');
  t.is((await reader.download())[0].toString(), 'x');
  const err = await t.throwsAsync(reader.delete());
  t.is(code(err), 403);
  t.is(
    (err as Error).message,
    "reader@test.iam.gserviceaccount.com does not have storage.objects.delete access to the Google Cloud Storage object. Permission 'storage.objects.delete' denied on resource (or it may not exist).",
  );
  t.true((await reader.exists())[0]);
});

for (const resumable of [false, true]) {
  test(`a create-only identity creates new objects but cannot replace one (${resumable ? 'resumable' : 'multipart'})`, async (t) => {
    const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
    await emu.createBucket('bkt');
    const file = clientWithToken(emu.url, 'writer-token').bucket('bkt').file('obj');
    await file.save('first', { resumable, preconditionOpts: { ifGenerationMatch: 0 } });
    const [metadata] = await file.getMetadata();
    // Replacing needs storage.objects.delete as well.
    const err = await t.throwsAsync(file.save('second', { resumable, preconditionOpts: { ifGenerationMatch: Number(metadata.generation) } }), { any: true });
    t.is(code(err), 403);
    t.is((await file.download())[0].toString(), 'first');
  });
}

test('bucket get and insert need the bucket permissions; createBucket() from code bypasses auth', async (t) => {
  const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
  await emu.createBucket('bkt');
  const reader = clientWithToken(emu.url, 'reader-token');
  t.is(code(await t.throwsAsync(reader.bucket('bkt').getMetadata())), 403);
  t.is(code(await t.throwsAsync(reader.createBucket('other'))), 403);
  const admin = clientWithToken(emu.url, 'admin-token');
  await admin.createBucket('other');
  t.is((await admin.bucket('other').getMetadata())[0].name, 'other');
});

test('without an AccessControl anyone may do anything', async (t) => {
  const { emu } = await startTestEmulator(t);
  await emu.createBucket('bkt');
  const response = await raw(`${emu.url}/storage/v1/b/bkt/o`, { headers: { Authorization: 'Bearer whatever' } });
  t.is(response.status, 200);
});

const OPS = Object.keys(ROUTE_TABLE) as Op[];

test('every sample request of the route table reaches its own operation', (t) => {
  for (const op of OPS) {
    const { method, path } = ROUTE_TABLE[op].sample;
    t.is(route(method, new URL(path, 'http://h')).op, op, `${method} ${path}`);
  }
});

/**
 * Every route of the table, from the router itself, answers an anonymous
 * caller 401, and a caller holding every permission but the route's own 403:
 * on an emulator with a bucket and an object, so no answer can be a 404.
 */
test('every route of the emulator answers 401 without a token and 403 without its permission', async (t) => {
  const lacking = (permission: Permission) => `all-but-${permission}`;
  const access: AccessControl = {
    identify: (token) => (token.startsWith('all-but-') ? `${token}@test.iam.gserviceaccount.com` : undefined),
    allowed: (identity, permission) => !identity.startsWith(`${lacking(permission)}@`),
  };
  const { emu } = await startTestEmulator(t, { access });
  await emu.createBucket('bkt');
  const admin = 'all-but-none';
  await clientWithToken(emu.url, admin)
    .bucket('bkt')
    .file('obj')
    .save('x', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  t.true(OPS.length >= 17, 'the table lists every operation');
  for (const op of OPS) {
    const { method, path } = ROUTE_TABLE[op].sample;
    const anonymous = await raw(`${emu.url}${path}`, { method });
    t.is(anonymous.status, 401, `${op}: ${method} ${path} answered ${anonymous.status} ${anonymous.body.toString().slice(0, 200)}`);
    t.is(anonymous.json().error.errors[0].reason, 'required', op);
    const rule = ROUTE_TABLE[op].access;
    if (!('permission' in rule)) continue;
    const denied = await raw(`${emu.url}${path}`, { method, headers: { Authorization: `Bearer ${lacking(rule.permission)}` } });
    t.is(denied.status, 403, `${op}: ${method} ${path} without ${rule.permission} answered ${denied.status} ${denied.body.toString().slice(0, 200)}`);
    t.regex(denied.json().error.message, new RegExp(`does not have ${rule.permission.replaceAll('.', '\\.')} access`), op);
  }
  t.is((await clientWithToken(emu.url, admin).bucket('bkt').file('obj').download())[0].toString(), 'x', 'nothing was changed');
});

test('a resumable session URI is the credential for its data requests, as on GCS, but only for a live session of its bucket', async (t) => {
  const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
  await emu.createBucket('bkt');
  await emu.createBucket('other');
  const start = await raw(`${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=obj&ifGenerationMatch=0`, {
    method: 'POST',
    headers: { Authorization: 'Bearer writer-token', 'Content-Type': 'application/json' },
    body: '{}',
  });
  t.is(start.status, 200);
  const session = String(start.headers.location);
  const otherBucket = session.replace('/b/bkt/', '/b/other/');
  t.is((await raw(otherBucket, { method: 'PUT', headers: { 'Content-Range': 'bytes */*' } })).status, 401);
  const put = await raw(session, { method: 'PUT', headers: { 'Content-Range': 'bytes 0-4/5' }, body: 'hello' });
  t.is(put.status, 200, put.body.toString());
  t.is(put.json().name, 'obj');
  // With a token, an unknown session is what it is: not found.
  const guessed = `${emu.url}/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=guessed`;
  t.is((await raw(guessed, { method: 'PUT', headers: { 'Content-Range': 'bytes */*', Authorization: 'Bearer writer-token' } })).status, 404);
});

test('listing buckets needs storage.buckets.list on the project', async (t) => {
  const { emu } = await startTestEmulator(t, { access: authority(GRANTS) });
  await emu.createBucket('bkt');
  t.is((await raw(`${emu.url}/b?project=p`)).status, 401);
  const reader = await raw(`${emu.url}/b?project=p`, { headers: { Authorization: 'Bearer reader-token' } });
  t.is(reader.status, 403);
  t.regex(reader.json().error.message, /does not have storage\.buckets\.list access to the Google Cloud project/);
  const [buckets] = await clientWithToken(emu.url, 'admin-token').getBuckets();
  t.deepEqual(
    buckets.map((b) => b.name),
    ['bkt'],
  );
});
