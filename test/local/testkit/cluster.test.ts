import test from 'ava';
import { existsSync } from 'node:fs';
import { cp, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, startClusterFromDirectory } from '../../../local/testkit/cluster.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../../local/testkit/users.ts';

async function waitForFile(file: string, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) {
    if (existsSync(file)) return true;
  }
  return false;
}

test('a new cluster answers queries and runs archive_command as the postgres user', async (t) => {
  const out = await makeTempDir('archived', { owner: 'postgres' });
  t.teardown(out.cleanup);
  const cluster = await startCluster({ archiveCommand: `touch ${out.path}/archived_%f` });
  t.teardown(() => cluster.destroy());

  const [row] = await cluster.query<{ sum: number }>('SELECT $1::int + $2::int AS sum', [40, 2]);
  t.is(row.sum, 42);
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS n');
  const segment = await cluster.switchWal();
  t.regex(segment, /^00000001[0-9A-F]{16}$/);

  await cluster.waitForArchived(segment);
  const marker = path.join(out.path, `archived_${segment}`);
  t.true(await waitForFile(marker, 10_000), `${marker} was not created`);
  const owner = (await stat(marker)).uid;
  const expected = runningAsRoot() ? (await postgresUser()).uid : process.getuid?.();
  t.is(owner as number | undefined, expected);
});

test('the cluster environment points libpq at the cluster', async (t) => {
  const cluster = await startCluster({ walSegSizeMB: 1, initdbArgs: ['--data-checksums'] });
  t.teardown(() => cluster.destroy());

  t.deepEqual(cluster.env, { PGHOST: cluster.host, PGPORT: String(cluster.port), PGUSER: 'postgres', PGDATABASE: 'postgres' });
  t.true(existsSync(path.join(cluster.host, `.s.PGSQL.${cluster.port}`)));
  const rows = await cluster.query<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_settings WHERE name IN ('wal_segment_size', 'data_checksums', 'wal_level', 'archive_mode', 'listen_addresses', 'port') ORDER BY name",
  );
  t.deepEqual(Object.fromEntries(rows.map((r) => [r.name, r.setting])), {
    archive_mode: 'on',
    data_checksums: 'on',
    listen_addresses: '127.0.0.1',
    port: String(cluster.port),
    wal_level: 'replica',
    wal_segment_size: String(1024 * 1024),
  });
});

test('a stopped cluster starts again with its data', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  await cluster.query('CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$still here$$)');

  await cluster.stop();
  t.false(await cluster.isRunning());
  await cluster.stop(); // stopping a stopped cluster is a no-op
  await cluster.start();
  t.true(await cluster.isRunning());
  t.deepEqual(await cluster.query('SELECT v FROM kept'), [{ v: 'still here' }]);
});

test('a copied data directory starts beside its running source', async (t) => {
  const source = await startCluster();
  t.teardown(() => source.destroy());
  await source.query('CREATE TABLE origin (v int); INSERT INTO origin VALUES (7)');
  await source.stop();
  const copy = await makeTempDir('copy');
  t.teardown(copy.cleanup);
  const pgdata = path.join(copy.path, 'data');
  await cp(source.pgdata, pgdata, { recursive: true });
  await source.start();

  // The copy's postgresql.conf names the source's port and socket directory.
  const copied = await startClusterFromDirectory(pgdata, { settings: { application_name: 'copy' } });
  t.teardown(() => copied.destroy());
  t.not(copied.port, source.port);
  t.not(copied.host, source.host);
  t.false(await copied.isInRecovery());
  t.deepEqual(await copied.query('SELECT v FROM origin'), [{ v: 7 }]);
  t.deepEqual(await copied.query('SHOW application_name'), [{ application_name: 'copy' }]);
  t.deepEqual(await source.query('SELECT v FROM origin'), [{ v: 7 }]);
  t.is((await stat(pgdata)).mode & 0o777, 0o700);
});

test('a standby started from a directory waits in recovery until promoted', async (t) => {
  const source = await startCluster();
  t.teardown(() => source.destroy());
  await source.stop();
  const copy = await makeTempDir('standby');
  t.teardown(copy.cleanup);
  const pgdata = path.join(copy.path, 'data');
  await cp(source.pgdata, pgdata, { recursive: true });
  // standby.signal without primary_conninfo or restore_command: it waits in recovery.
  await writeFile(path.join(pgdata, 'standby.signal'), '');

  const standby = await startClusterFromDirectory(pgdata);
  t.teardown(() => standby.destroy());
  t.true(await standby.isInRecovery());
  await standby.promote();
  await standby.waitForRecoveryEnd(30_000);
  t.false(await standby.isInRecovery());
});

test('a server that cannot start reports its log', async (t) => {
  const error = await t.throwsAsync(startCluster({ settings: { shared_buffers: 'plenty' } }));
  t.regex(error?.message ?? '', /cannot start PostgreSQL/);
  t.regex(error?.message ?? '', /invalid value for parameter "shared_buffers"/);
});

test('waiting for a WAL file that fails to archive reports the archiver failure', async (t) => {
  const cluster = await startCluster({ archiveCommand: 'false' });
  t.teardown(() => cluster.destroy());
  await cluster.query('CREATE TABLE t (n int)');
  const segment = await cluster.switchWal();

  const error = await t.throwsAsync(cluster.waitForArchived(segment, 3_000));
  t.regex(error?.message ?? '', new RegExp(`${segment} not archived within 3000 ms`));
  t.regex(error?.message ?? '', new RegExp(`last_failed_wal=${segment}`));
  t.regex(error?.message ?? '', /archive command failed/);
});
