import test from 'ava';
import { parseConfig } from '../../../agent/config.ts';
import { parsePrimaryConninfo, splitKeywordValue, tlsOptionsFor, type PrimaryConninfo } from '../../../agent/pg/conninfo.ts';
import { UsageError } from '../../../core/errors.ts';

const env = { variable: 'GCWAL_PRIMARY_CONNINFO', fromFlag: false };
const none: PrimaryConninfo = {
  host: undefined,
  hostaddr: undefined,
  port: undefined,
  user: undefined,
  database: undefined,
  password: undefined,
  passfile: undefined,
  sslmode: 'prefer',
  sslrootcert: undefined,
  sslcert: undefined,
  sslkey: undefined,
  connectTimeoutSeconds: undefined,
};

const rows: { name: string; input: string; expected: Partial<PrimaryConninfo> }[] = [
  {
    name: 'keyword/value pairs',
    input: 'host=db1 port=5433 user=postgres dbname=app',
    expected: { host: 'db1', port: 5433, user: 'postgres', database: 'app' },
  },
  {
    name: 'spaces around "=", quoted values, escapes',
    input: "host = db1  user='a b' password='it\\'s \\\\ x' dbname=we\\ ird",
    expected: { host: 'db1', user: 'a b', password: "it's \\ x", database: 'we ird' },
  },
  { name: 'an empty quoted value', input: "host=db1 password=''", expected: { host: 'db1', password: '' } },
  { name: 'hostaddr beside host', input: 'host=db1.example hostaddr=10.0.0.5', expected: { host: 'db1.example', hostaddr: '10.0.0.5' } },
  {
    name: 'a URI',
    input: 'postgresql://rep%40ops:s%3Acret@db1:6432/app?sslmode=require&connect_timeout=5',
    expected: { host: 'db1', port: 6432, user: 'rep@ops', password: 's:cret', database: 'app', sslmode: 'require', connectTimeoutSeconds: 5 },
  },
  {
    name: 'a URI with a socket directory',
    input: 'postgres://%2Fvar%2Frun%2Fpostgresql/postgres',
    expected: { host: '/var/run/postgresql', database: 'postgres' },
  },
  { name: 'a URI with an IPv6 host', input: 'postgresql://[::1]:5432', expected: { host: '::1', port: 5432 } },
  {
    name: "what pg_basebackup -R writes as primary_conninfo (libpq's own keywords accepted, without effect)",
    input:
      "user=postgres passfile='/var/lib/postgresql/.pgpass' channel_binding=prefer host=10.0.0.1 port=5432 sslmode=prefer sslcompression=0 sslcertmode=allow sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres gssdelegation=0 target_session_attrs=any load_balance_hosts=disable",
    expected: { host: '10.0.0.1', port: 5432, user: 'postgres', passfile: '/var/lib/postgresql/.pgpass' },
  },
  { name: 'connect_timeout below 2 s counts as 2 s, as in libpq', input: 'host=db1 connect_timeout=1', expected: { host: 'db1', connectTimeoutSeconds: 2 } },
];

for (const row of rows) {
  test(`a connection string is read: ${row.name}`, (t) => {
    t.deepEqual(parsePrimaryConninfo(row.input, env), { ...none, ...row.expected });
  });
}

const refused: { name: string; input: string; message: RegExp }[] = [
  { name: 'a keyword without "="', input: 'host=db1 port', message: /^GCWAL_PRIMARY_CONNINFO: missing "=" after "port"$/ },
  { name: 'an unterminated quote', input: "host=db1 password='abc", message: /^GCWAL_PRIMARY_CONNINFO: unterminated quoted value for password$/ },
  { name: 'an unknown keyword', input: 'host=db1 hots=db2', message: /^GCWAL_PRIMARY_CONNINFO: unknown keyword "hots"$/ },
  { name: 'a service name', input: 'service=prod', message: /service is not supported/ },
  { name: 'several hosts', input: 'host=db1,db2', message: /names several hosts/ },
  { name: 'several hosts in a URI', input: 'postgresql://db1,db2/x', message: /names several hosts/ },
  { name: 'an unknown sslmode', input: 'host=db1 sslmode=on', message: /sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full/ },
  { name: 'a port out of range', input: 'host=db1 port=70000', message: /port must be an integer from 1 to 65535/ },
];

for (const row of refused) {
  test(`a connection string is refused with a usage error: ${row.name}`, (t) => {
    const err = t.throws(() => parsePrimaryConninfo(row.input, env), { instanceOf: UsageError });
    t.regex(err!.message, row.message);
  });
}

test('a password is accepted in GCWAL_PRIMARY_CONNINFO but refused in --primary-conninfo, without echoing it', (t) => {
  t.is(parseConfig({}, { GCWAL_PRIMARY_CONNINFO: 'host=db1 password=hunter2' }).primary?.password, 'hunter2');
  const err = t.throws(() => parseConfig({ 'primary-conninfo': 'host=db1 password=hunter2' }, {}), { instanceOf: UsageError });
  t.is(err!.message, '--primary-conninfo carries a password: a command line is visible to every user of the host (ps)');
  t.notRegex(`${err!.message} ${err!.hint}`, /hunter2/);
  t.is(parseConfig({ 'primary-conninfo': 'host=db1 user=backup' }, {}).primary?.user, 'backup');
  t.is(parseConfig({}, {}).primary, undefined);
});

test('a malformed value never shows in the error, which may hold a password', (t) => {
  const err = t.throws(() => parseConfig({}, { GCWAL_PRIMARY_CONNINFO: "host=db1 password='s3cr3t" }), { instanceOf: UsageError });
  t.notRegex(`${err!.message} ${err!.hint}`, /s3cr3t/);
});

test('sslmode chooses TLS: none, tried, unverified, verified with or without the host name', async (t) => {
  const tls = (sslmode: PrimaryConninfo['sslmode'], more: Partial<PrimaryConninfo> = {}) => tlsOptionsFor({ ...none, sslmode, ...more });
  t.is(await tls('disable'), false);
  t.is(await tls('allow'), false);
  t.is(await tls('prefer'), 'prefer');
  t.deepEqual(await tls('require'), { rejectUnauthorized: false });
  const full = await tls('verify-full', { sslrootcert: 'system' });
  t.true(full !== false && full !== 'prefer' && full.rejectUnauthorized === true && full.checkServerIdentity === undefined);
  const ca = await tls('verify-ca', { sslrootcert: 'system' });
  t.true(ca !== false && ca !== 'prefer' && ca.rejectUnauthorized === true && ca.checkServerIdentity?.('x', {} as never) === undefined);
  await t.throwsAsync(tls('verify-full', { sslrootcert: '/nonexistent/root.crt' }), {
    instanceOf: UsageError,
    message: /cannot read sslrootcert \/nonexistent\/root.crt \(ENOENT\)/,
  });
  await t.throwsAsync(tls('require', { sslcert: '/nonexistent/client.crt' }), {
    instanceOf: UsageError,
    message: /cannot read sslcert \/nonexistent\/client.crt \(ENOENT\)/,
  });
});

test('splitting keeps the last of a repeated keyword, as libpq does', (t) => {
  t.deepEqual([...splitKeywordValue('port=1 port=2', 'X')], [['port', '2']]);
});
