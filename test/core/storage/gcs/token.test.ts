/**
 * The gs:// driver's token sources against the local metadata-server
 * stand-in and the GCS emulator enforcing the tokens it mints: the direct
 * source (node:http to the metadata server) and google-auth-library.
 */
import test from 'ava';
import { createServer as createHttpServer } from 'node:http';
import { createRequire } from 'node:module';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { AuthError, NotFoundError, StorageError } from '../../../../core/errors.ts';
import { GCS_SCOPES, GoogleAuthTokens, loadGoogleAuth, MetadataServerTokens } from '../../../../core/storage/gcs/token.ts';
import { freePort } from '../../../../local/process/port.ts';
import { startLocalStack, type LocalStack } from '../../../../local/stack.ts';
import { adoptStackEnv } from '../../../helpers/stack-env.ts';

let stack: LocalStack;

test.before(async () => {
  stack = await startLocalStack();
  adoptStackEnv(stack);
});
test.after.always(async () => {
  await stack?.close();
});

/** The emulator's answer to a listing of the bucket with these headers. */
async function listStatus(headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?maxResults=1`, { headers });
  await res.arrayBuffer();
  return res.status;
}

test.serial('a token from the metadata server is accepted by the emulator', async (t) => {
  const tokens = new MetadataServerTokens({ host: stack.metadata.host });
  const headers = await tokens.headers();
  t.regex(headers.Authorization, /^Bearer ya29\./);
  t.is(await listStatus(headers), 200);
  t.is(await listStatus({ Authorization: 'Bearer not-a-token' }), 401, 'the emulator does check tokens');
});

test.serial('the token is cached: repeated and concurrent calls make one request', async (t) => {
  const tokens = new MetadataServerTokens({ host: stack.metadata.host });
  const before = stack.metadata.requests();
  const all = await Promise.all(Array.from({ length: 5 }, () => tokens.headers()));
  const again = await tokens.headers();
  t.is(stack.metadata.requests() - before, 1);
  t.is(new Set([...all, again].map((h) => h.Authorization)).size, 1);
});

test.serial('a token near its expiry, or invalidated, is fetched again', async (t) => {
  let now = Date.now();
  const tokens = new MetadataServerTokens({ host: stack.metadata.host, now: () => now });
  const before = stack.metadata.requests();
  await tokens.headers();
  now += 3600_000 - 299_000; // inside the last five minutes of the stand-in's one-hour tokens
  await tokens.headers();
  t.is(stack.metadata.requests() - before, 2);
  t.true(tokens.invalidate(), 'there was a token to drop');
  await tokens.headers();
  t.is(stack.metadata.requests() - before, 3);
  t.true(tokens.invalidate());
  t.false(tokens.invalidate(), 'nothing cached any more');
});

test.serial('the identity is asked for only when wanted, and is the attached account', async (t) => {
  const tokens = new MetadataServerTokens({ host: stack.metadata.host });
  const before = stack.metadata.requests();
  await tokens.headers();
  t.is(stack.metadata.requests() - before, 1, 'no email request for a token');
  t.is(await tokens.identity(), stack.agentIdentity);
  t.is(await tokens.identity(), stack.agentIdentity);
  t.is(stack.metadata.requests() - before, 2, 'the email is read once');
});

test.serial('a revoked account gets an auth error naming it', async (t) => {
  const tokens = new MetadataServerTokens({ host: stack.metadata.host });
  stack.authority.revoke(stack.agentIdentity);
  t.teardown(() => stack.authority.restore(stack.agentIdentity));
  const err = await t.throwsAsync(tokens.headers());
  t.true(err instanceof AuthError, String(err));
  t.is((err as AuthError).code, 'auth');
  t.true(err!.message.includes(stack.agentIdentity), err!.message);
  t.true(err!.message.includes(stack.metadata.host), err!.message);
  t.regex(err!.message, /HTTP 403/);
  t.regex((err as AuthError).hint, /GOOGLE_APPLICATION_CREDENTIALS/);
});

test('an unreachable metadata host is an auth error, quickly', async (t) => {
  const port = await freePort();
  const tokens = new MetadataServerTokens({ host: `127.0.0.1:${port}` });
  const started = Date.now();
  const err = await t.throwsAsync(tokens.headers());
  t.true(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
  t.true(err instanceof AuthError, String(err));
  t.false(err instanceof NotFoundError);
  t.false(err instanceof StorageError);
  t.regex(err!.message, new RegExp(`metadata server at 127\\.0\\.0\\.1:${port} could not be reached \\(ECONNREFUSED\\)`));
  t.regex((err as AuthError).hint, /service account is attached|GOOGLE_APPLICATION_CREDENTIALS/);
});

test('a metadata host that never answers is an auth error after the timeout, not a hang', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createTcpServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const tokens = new MetadataServerTokens({ host: `127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 300 });
  const started = Date.now();
  const err = await t.throwsAsync(tokens.headers());
  t.true(Date.now() - started < 30_000, `took ${Date.now() - started} ms: no timeout`);
  t.true(err instanceof AuthError, String(err));
  t.regex(err!.message, /did not answer within 300 ms, 4 times/);
  t.is(sockets.size, 4, 'the default three retries each opened a connection');
});

test('a metadata server that misses one deadline is asked again and its token used', async (t) => {
  let connections = 0;
  const server = createHttpServer((_req, res) => {
    connections++;
    if (connections === 1) return; // the first request is never answered
    res.writeHead(200, { 'Metadata-Flavor': 'Google', 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ access_token: 'late-but-fine', expires_in: 3600, token_type: 'Bearer' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const tokens = new MetadataServerTokens({ host: `127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutMs: 300 });
  t.is((await tokens.headers()).Authorization, 'Bearer late-but-fine');
  t.is(connections, 2);
});

/** A one-off HTTP server answering each token request with the next of `answers` (the last repeats). */
async function scripted(
  t: import('ava').ExecutionContext,
  answers: { status: number; body: string; flavor?: boolean }[],
): Promise<{ host: string; requests: () => number }> {
  let n = 0;
  const server = createHttpServer((req, res) => {
    // Only token requests count; an email request (for a message) gets a 404.
    if (!req.url?.includes('/token')) return void res.writeHead(404, { 'Metadata-Flavor': 'Google' }).end();
    const a = answers[Math.min(n++, answers.length - 1)];
    if (a.flavor !== false) res.setHeader('Metadata-Flavor', 'Google');
    res.writeHead(a.status, { 'Content-Type': 'application/json' }).end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n };
}

test('5xx answers from the metadata server are retried briefly', async (t) => {
  const token = JSON.stringify({ access_token: 'tok', expires_in: 3599, token_type: 'Bearer' });
  const server = await scripted(t, [
    { status: 503, body: 'busy' },
    { status: 500, body: 'oops' },
    { status: 200, body: token },
  ]);
  const tokens = new MetadataServerTokens({ host: server.host });
  t.deepEqual(await tokens.headers(), { Authorization: 'Bearer tok' });
  t.is(server.requests(), 3);
  const failing = await scripted(t, [{ status: 503, body: 'busy' }]);
  const err = await t.throwsAsync(new MetadataServerTokens({ host: failing.host, retries: 2 }).headers());
  t.true(err instanceof AuthError);
  t.regex(err!.message, /HTTP 503/);
  t.is(failing.requests(), 3);
});

const badAnswers: [string, { status: number; body: string; flavor?: boolean }, RegExp][] = [
  ['a body that is not JSON', { status: 200, body: '<html>' }, /not JSON/],
  ['JSON without a token', { status: 200, body: '{"expires_in":10}' }, /without access_token/],
  ['an answer without Metadata-Flavor', { status: 200, body: '{"access_token":"x","expires_in":10}', flavor: false }, /is not a metadata server/],
  ['no service account (404)', { status: 404, body: 'not found' }, /HTTP 404/],
];
for (const [what, answer, message] of badAnswers) {
  test(`${what} is an auth error`, async (t) => {
    const server = await scripted(t, [answer]);
    const err = await t.throwsAsync(new MetadataServerTokens({ host: server.host }).headers());
    t.true(err instanceof AuthError, String(err));
    t.regex(err!.message, message);
  });
}

test('the token request names the storage scope', async (t) => {
  const seen: string[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req.url ?? '');
    res.setHeader('Metadata-Flavor', 'Google');
    res.end(JSON.stringify({ access_token: 'tok', expires_in: 3599 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  await new MetadataServerTokens({ host: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }).headers();
  t.deepEqual(seen, [`/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(GCS_SCOPES.join(','))}`]);
});

test('an aborted caller stops waiting without failing the shared request', async (t) => {
  const tokens = new MetadataServerTokens({ host: stack.metadata.host });
  const ac = new AbortController();
  const first = tokens.headers(ac.signal);
  const second = tokens.headers();
  ac.abort();
  await t.throwsAsync(first, { any: true, name: 'AbortError' });
  t.regex((await second).Authorization, /^Bearer /);
});

test.serial('google-auth-library tokens (ADC through the same metadata server) are accepted too', async (t) => {
  const tokens = new GoogleAuthTokens(() => loadGoogleAuth({}));
  const headers = await tokens.headers();
  t.is(await listStatus(headers), 200);
  t.is(await tokens.identity(), stack.agentIdentity);
});

test('credentials google-auth-library cannot use are an auth error', async (t) => {
  const { GoogleAuth } = createRequire(import.meta.resolve('@google-cloud/storage'))('google-auth-library') as typeof import('google-auth-library');
  const auth = new GoogleAuth({ keyFilename: path.join(stack.dir, 'no-such-key.json'), scopes: GCS_SCOPES });
  const err = await t.throwsAsync(new GoogleAuthTokens(async () => ({ client: auth, identity: undefined })).headers());
  t.true(err instanceof AuthError, String(err));
  t.regex(err!.message, /^no access token for the application default credentials from google-auth-library: .*no-such-key\.json/);
  t.regex((err as AuthError).hint, /GOOGLE_APPLICATION_CREDENTIALS/);
});

test.serial(
  'a metadata server that does not answer google-auth-library in time is a transient network failure for the caller to retry, not an auth error',
  async (t) => {
    // Accepts the connection and never answers: gcp-metadata gives up after its own timeout.
    const held: Socket[] = [];
    const silent = createTcpServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { Compute } = createRequire(import.meta.resolve('@google-cloud/storage'))('google-auth-library') as typeof import('google-auth-library');
    const saved = process.env.GCE_METADATA_HOST;
    process.env.GCE_METADATA_HOST = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const client = new Compute({ scopes: GCS_SCOPES });
      const err = await t.throwsAsync(new GoogleAuthTokens(async () => ({ client, identity: 'agent@example.iam.gserviceaccount.com' })).headers());
      t.false(err instanceof AuthError, String(err));
      t.regex(String(err), /timeout/i);
    } finally {
      if (saved === undefined) delete process.env.GCE_METADATA_HOST;
      else process.env.GCE_METADATA_HOST = saved;
      for (const s of held) s.destroy();
      silent.close();
    }
  },
);
