import test from 'ava';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connectPostgres, pgQuery, resolvePgHost } from '../../../agent/pg/connect.ts';
import { parsePrimaryConninfo, tlsOptionsFor } from '../../../agent/pg/conninfo.ts';
import { PostgresError } from '../../../core/errors.ts';
import { startCluster } from '../../../local/testkit/cluster.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { freePort } from '../../../local/process/port.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { runningAsRoot } from '../../../local/testkit/users.ts';

const pgConfig = (env: Readonly<Record<string, string>>) => ({
  host: env.PGHOST,
  port: Number(env.PGPORT),
  user: env.PGUSER,
  database: env.PGDATABASE,
  password: undefined,
});

test("without PGHOST the first socket directory holding the port's socket is used, as libpq does", (t) => {
  t.is(
    resolvePgHost('db.example', 5432, () => true),
    'db.example',
  );
  t.is(
    resolvePgHost(undefined, 5433, (p) => p === '/tmp/.s.PGSQL.5433'),
    '/tmp',
  );
  t.is(
    resolvePgHost(undefined, 5432, (p) => p.startsWith('/var/run/postgresql/')),
    '/var/run/postgresql',
  );
  t.is(
    resolvePgHost(undefined, 5432, () => false),
    'localhost',
  );
});

test('a server that does not answer is a postgres error naming where we tried', async (t) => {
  const port = await freePort();
  const err = await t.throwsAsync(connectPostgres({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', password: undefined }), {
    instanceOf: PostgresError,
  });
  t.regex(err!.message, new RegExp(`^could not connect to postgresql at 127\\.0\\.0\\.1:${port} as postgres: .*ECONNREFUSED`));
  t.is(err!.code, 'postgres');
});

test("a session runs queries, and a failing statement is a postgres error with the server's message", async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const { client, where } = await connectPostgres(pgConfig(cluster.env));
  t.teardown(() => client.end());
  t.is(where, `${cluster.host}:${cluster.port}`);
  const [row] = await pgQuery<{ n: number }>(client, 'adding', 'SELECT $1::int + 1 AS n', [41]);
  t.is(row.n, 42);
  const err = await t.throwsAsync(pgQuery(client, 'reading a table', 'SELECT * FROM no_such_table'), { instanceOf: PostgresError });
  t.is(err!.message, 'reading a table failed: relation "no_such_table" does not exist (sqlstate 42P01)');
});

test("an unknown database is a postgres error with the server's message", async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const err = await t.throwsAsync(connectPostgres({ ...pgConfig(cluster.env), database: 'nope' }), { instanceOf: PostgresError });
  t.regex(err!.message, /database "nope" does not exist/);
});

test("a server asking for a password gets PGPASSWORD's, else the password file's, else a clear error", async (t) => {
  const cluster = await startCluster({ initdbArgs: ['--auth-host=scram-sha-256'] });
  t.teardown(() => cluster.destroy());
  await cluster.query("ALTER USER postgres PASSWORD 'pa:ss'");
  const dir = await makeTempDir('connect-pgpass');
  t.teardown(dir.cleanup);
  const passfile = path.join(dir.path, 'pgpass');
  await writeFile(passfile, `127.0.0.1:${cluster.port}:postgres:postgres:pa\\:ss\n`, { mode: 0o600 });
  // Over TCP, where the server asks for a password (its socket trusts local users).
  const tcp = { host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres', password: undefined };

  const fromEnv = await connectPostgres({ ...tcp, password: 'pa:ss', passfile: path.join(dir.path, 'none') });
  await fromEnv.client.end();
  const fromFile = await connectPostgres({ ...tcp, passfile });
  t.deepEqual(await pgQuery(fromFile.client, 'asking', 'SELECT current_user AS u'), [{ u: 'postgres' }]);
  await fromFile.client.end();

  const none = await t.throwsAsync(connectPostgres({ ...tcp, passfile: path.join(dir.path, 'none') }), { instanceOf: PostgresError });
  t.is(
    none!.message,
    `could not connect to postgresql at 127.0.0.1:${cluster.port} as postgres: the server asks for a password and none is set (no PGPASSWORD, no line for 127.0.0.1:${cluster.port}:postgres:postgres in ${path.join(dir.path, 'none')})`,
  );
  t.regex(none!.hint, /^set PGPASSWORD or add the line to the password file/);

  await chmod(passfile, 0o644);
  const warnings: string[] = [];
  await t.throwsAsync(connectPostgres({ ...tcp, passfile }, { warn: (m) => warnings.push(m) }), {
    instanceOf: PostgresError,
    message: /the server asks for a password and none is set/,
  });
  t.deepEqual(warnings, [`password file ${passfile} has group or world access and is ignored; permissions should be u=rw (0600) or less`]);
});

/** A CA and a server certificate it signed for db.example only (no address), as PEM files in `dir`. */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string; otherCa: string }> {
  const f = (name: string) => path.join(dir, name);
  const ssl = (args: string[]) => execOk('openssl', args);
  for (const ca of ['ca', 'other-ca']) {
    await ssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=gcwal test ${ca}`,
      '-keyout',
      f(`${ca}.key`),
      '-out',
      f(`${ca}.crt`),
    ]);
  }
  await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=db.example', '-keyout', f('server.key'), '-out', f('server.csr')]);
  await writeFile(f('ext'), 'subjectAltName=DNS:db.example\n');
  await ssl([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('ext'),
    '-out',
    f('server.crt'),
  ]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key'), otherCa: f('other-ca.crt') };
}

test('sslmode is honoured as libpq does: prefer and require encrypt, verify-ca and verify-full check the certificate (verify-full against host while connecting to hostaddr), prefer falls back to a plain connection and require fails on a server without TLS', async (t) => {
  const dir = await makeTempDir('connect-tls', { owner: 'postgres' });
  t.teardown(dir.cleanup);
  const certs = await makeCertificates(dir.path);
  if (runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', dir.path]);
  await chmod(certs.key, 0o600);
  const withTls = await startCluster({ settings: { ssl: true, ssl_cert_file: certs.cert, ssl_key_file: certs.key } });
  t.teardown(() => withTls.destroy());

  /** Whether a session opened as `conninfo` says runs encrypted, or the error it failed with. */
  const attempt = async (port: number, conninfo: string): Promise<boolean | string> => {
    const c = parsePrimaryConninfo(`${conninfo} port=${port} user=postgres dbname=postgres`, { variable: 'X', fromFlag: false });
    try {
      const { client } = await connectPostgres(
        { host: c.hostaddr ?? c.host, port: c.port, user: c.user, database: c.database, password: undefined },
        { tls: await tlsOptionsFor(c) },
      );
      const [row] = await pgQuery<{ ssl: boolean }>(client, 'asking', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      await client.end();
      return row.ssl;
    } catch (err) {
      return (err as Error).message;
    }
  };
  const p = withTls.port;
  t.is(await attempt(p, 'host=127.0.0.1'), true, 'prefer, the default');
  t.is(await attempt(p, 'host=127.0.0.1 sslmode=require'), true);
  t.is(await attempt(p, 'host=127.0.0.1 sslmode=disable'), false);
  t.is(await attempt(p, `host=127.0.0.1 sslmode=verify-ca sslrootcert=${certs.ca}`), true);
  t.is(await attempt(p, `host=db.example hostaddr=127.0.0.1 sslmode=verify-full sslrootcert=${certs.ca}`), true);
  t.regex(String(await attempt(p, `host=127.0.0.1 sslmode=verify-full sslrootcert=${certs.ca}`)), /IP: 127\.0\.0\.1 is not in the cert's list/);
  t.regex(
    String(await attempt(p, `host=db.example hostaddr=127.0.0.1 sslmode=verify-ca sslrootcert=${certs.otherCa}`)),
    /self[- ]signed|unable to verify|unable to get local issuer/i,
  );

  const plain = await startCluster();
  t.teardown(() => plain.destroy());
  t.is(await attempt(plain.port, 'host=127.0.0.1 sslmode=prefer'), false);
  t.regex(
    String(await attempt(plain.port, 'host=127.0.0.1 sslmode=require')),
    /^could not connect to postgresql at 127\.0\.0\.1:\d+ as postgres: The server does not support SSL connections/,
  );
});
