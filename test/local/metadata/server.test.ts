import { connect } from 'node:net';
import test from 'ava';
import { TokenAuthority } from '../../../local/auth/authority.ts';
import { startMetadataServer, type MetadataServer } from '../../../local/metadata/server.ts';

const SA = 'agent@proj.iam.gserviceaccount.com';
const V1 = '/computeMetadata/v1';
const FLAVOR = { 'Metadata-Flavor': 'Google' };

async function start(t: { teardown(fn: () => unknown): void }, extra: { tokenTtlSeconds?: number } = {}) {
  const authority = new TokenAuthority();
  const server = await startMetadataServer({ authority, identity: SA, projectId: 'proj', ...extra });
  t.teardown(() => server.close());
  return { authority, server };
}

async function get(server: MetadataServer, path: string, headers: Record<string, string> = FLAVOR) {
  const res = await fetch(`${server.url}${path}`, { headers });
  return { status: res.status, flavor: res.headers.get('metadata-flavor'), type: res.headers.get('content-type'), body: await res.text() };
}

test('host and url name a loopback port', async (t) => {
  const { server } = await start(t);
  t.regex(server.host, /^127\.0\.0\.1:\d+$/);
  t.is(server.url, `http://${server.host}`);
});

for (const [name, headers] of [
  ['no Metadata-Flavor header', {}],
  ['Metadata-Flavor of the wrong value', { 'Metadata-Flavor': 'Amazon' }],
  ['the retired X-Google-Metadata-Request header', { 'X-Google-Metadata-Request': 'True' }],
] as const) {
  test(`a request with ${name} is refused with 403, still flavoured Google`, async (t) => {
    const { server, authority } = await start(t);
    const res = await get(server, `${V1}/instance/service-accounts/default/token`, headers);
    t.is(res.status, 403);
    t.is(res.flavor, 'Google');
    t.regex(res.body, /Missing Metadata-Flavor:Google header/);
    t.notRegex(res.body, /ya29\./);
    t.false(authority.isDisabled(SA));
  });
}

const TEXT_TABLE: { path: string; body: string | RegExp }[] = [
  { path: `${V1}/instance`, body: 'service-accounts/\n' },
  { path: `${V1}/instance/`, body: 'service-accounts/\n' },
  { path: `${V1}/`, body: 'instance/\nproject/\n' },
  { path: `${V1}/project/project-id`, body: 'proj' },
  { path: `${V1}/project/numeric-project-id`, body: /^[1-9]\d{11}$/ },
  { path: `${V1}/instance/service-accounts/`, body: `default/\n${SA}/\n` },
  { path: `${V1}/instance/service-accounts/default/`, body: 'aliases\nemail\nidentity\nscopes\ntoken\n' },
  { path: `${V1}/instance/service-accounts/default/email`, body: SA },
  { path: `${V1}/instance/service-accounts/${SA}/email`, body: SA },
  { path: `${V1}/instance/service-accounts/${encodeURIComponent(SA)}/email`, body: SA },
  { path: `${V1}/instance/service-accounts/default/aliases`, body: 'default\n' },
  { path: `${V1}/instance/service-accounts/default/scopes`, body: 'https://www.googleapis.com/auth/cloud-platform\n' },
];

for (const { path, body } of TEXT_TABLE) {
  test(`GET ${path} answers like GCE`, async (t) => {
    const { server } = await start(t);
    const res = await get(server, path);
    t.is(res.status, 200);
    t.is(res.flavor, 'Google');
    if (typeof body === 'string') t.is(res.body, body);
    else t.regex(res.body, body);
  });
}

test('the numeric project id is stable for a project id', async (t) => {
  const { server } = await start(t);
  const again = await startMetadataServer({ authority: new TokenAuthority(), identity: SA, projectId: 'proj' });
  t.teardown(() => again.close());
  const other = await startMetadataServer({ authority: new TokenAuthority(), identity: SA, projectId: 'other', numericProjectId: '42' });
  t.teardown(() => other.close());
  const path = `${V1}/project/numeric-project-id`;
  t.is((await get(server, path)).body, (await get(again, path)).body);
  t.is((await get(other, path)).body, '42');
});

test('recursive listings of the service accounts are JSON with email, aliases and scopes', async (t) => {
  const { server } = await start(t);
  const account = { aliases: ['default'], email: SA, scopes: ['https://www.googleapis.com/auth/cloud-platform'] };
  const all = await get(server, `${V1}/instance/service-accounts/?recursive=true`);
  t.is(all.type, 'application/json');
  t.deepEqual(JSON.parse(all.body), { default: account, [SA]: account });
  t.deepEqual(JSON.parse((await get(server, `${V1}/instance/service-accounts/default/?recursive=true`)).body), account);
  t.deepEqual(JSON.parse((await get(server, `${V1}/instance/service-accounts/${SA}/?recursive=true`)).body), account);
});

for (const path of [`${V1}/instance/service-accounts/default/token`, `${V1}/instance/service-accounts/${SA}/token`]) {
  test(`${path.slice(V1.length)} mints a bearer token the authority maps to the account`, async (t) => {
    const { server, authority } = await start(t, { tokenTtlSeconds: 600 });
    const res = await get(server, `${path}?scopes=https://www.googleapis.com/auth/devstorage.read_write`);
    t.is(res.status, 200);
    t.is(res.flavor, 'Google');
    const body = JSON.parse(res.body);
    t.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'token_type']);
    t.is(body.token_type, 'Bearer');
    t.is(body.expires_in, 600);
    t.is(authority.identify(body.access_token), SA);
    const second = JSON.parse((await get(server, path)).body);
    t.not(second.access_token, body.access_token);
  });
}

test('a revoked account gets 403 from the token and identity endpoints until restored', async (t) => {
  const { server, authority } = await start(t);
  const before = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body).access_token;
  authority.revoke(SA);
  t.is(authority.identify(before), undefined);
  for (const path of ['token', 'identity?audience=https://example.test']) {
    const res = await get(server, `${V1}/instance/service-accounts/default/${path}`);
    t.is(res.status, 403, path);
    t.is(res.flavor, 'Google');
    t.is(res.body, `service account ${SA} is disabled or its credentials were revoked`);
  }
  t.is((await get(server, `${V1}/instance/service-accounts/default/email`)).body, SA, 'the account is still attached');
  authority.restore(SA);
  const after = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body).access_token;
  t.is(authority.identify(after), SA);
});

test('setIdentity switches the default account; old tokens keep their identity', async (t) => {
  const { server, authority } = await start(t);
  const old = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body).access_token;
  const next = 'reader@proj.iam.gserviceaccount.com';
  server.setIdentity(next);
  t.is((await get(server, `${V1}/instance/service-accounts/default/email`)).body, next);
  const fresh = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body).access_token;
  t.is(authority.identify(fresh), next);
  t.is(authority.identify(old), SA);
  t.is((await get(server, `${V1}/instance/service-accounts/${SA}/token`)).status, 404, 'the detached account is gone');
});

test('the identity endpoint needs an audience and returns a JWT naming account and audience', async (t) => {
  const { server } = await start(t);
  const missing = await get(server, `${V1}/instance/service-accounts/default/identity`);
  t.is(missing.status, 400);
  const res = await get(server, `${V1}/instance/service-accounts/default/identity?audience=https://fn.example.test&format=full`);
  t.is(res.status, 200);
  const [header, payload, signature] = res.body.split('.');
  t.is(signature, '');
  t.is(JSON.parse(Buffer.from(header, 'base64url').toString()).typ, 'JWT');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  t.is(claims.aud, 'https://fn.example.test');
  t.is(claims.email, SA);
  t.is(claims.iss, 'https://accounts.google.com');
  t.is(claims.exp - claims.iat, 3600);
});

for (const path of [
  '/',
  '/computeMetadata/v2/instance',
  `${V1}/instance/hostname`,
  `${V1}/project/attributes/ssh-keys`,
  `${V1}/instance/service-accounts/stranger@proj.iam.gserviceaccount.com/token`,
  `${V1}/instance/service-accounts/default/token/extra`,
]) {
  test(`unknown path ${path} is 404, flavoured Google`, async (t) => {
    const { server } = await start(t);
    const res = await get(server, path);
    t.is(res.status, 404);
    t.is(res.flavor, 'Google');
    t.notRegex(res.body, /ya29\./);
  });
}

test('methods other than GET are refused', async (t) => {
  const { server } = await start(t);
  const res = await fetch(`${server.url}${V1}/instance/service-accounts/default/token`, { method: 'POST', headers: FLAVOR });
  t.is(res.status, 405);
  t.is(res.headers.get('metadata-flavor'), 'Google');
});

test('requests() counts every request, refused ones too', async (t) => {
  const { server } = await start(t);
  t.is(server.requests(), 0);
  await get(server, `${V1}/instance`);
  await get(server, `${V1}/instance`, {});
  await get(server, '/nothing');
  t.is(server.requests(), 3);
});

test('close stops listening, drops kept-alive connections and can be called twice', async (t) => {
  const { server } = await start(t);
  await get(server, `${V1}/instance`);
  const port = Number(server.host.split(':')[1]);
  await Promise.all([server.close(), server.close()]);
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
  t.true(refused);
});
