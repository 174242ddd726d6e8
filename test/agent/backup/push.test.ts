import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { chooseBackupName, pushBackup, type PushOptions } from '../../../agent/backup/push.ts';
import { createLogger } from '../../../agent/log.ts';
import { createProgress } from '../../../agent/progress.ts';
import { listBackups } from '../../../core/backup/list.ts';
import type { ManifestEntry } from '../../../core/backup/meta.ts';
import { ClusterMismatchError, ConflictError, StorageError, UsageError } from '../../../core/errors.ts';
import { backupPartKey, REPOSITORY_KEY } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { readSmallObject, writeSmallObject } from '../../../core/storage/objects.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { parseLsn } from '../../../core/wal/lsn.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';

const dirs: string[] = [];
async function repository(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-push-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'));
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}

/** A repository created for `cluster`, as gcwal repo-create does. */
async function repositoryFor(cluster: Cluster): Promise<FileStorage> {
  const storage = await repository();
  const [row] = await cluster.query<{ id: string; bytes: string }>(
    "SELECT system_identifier::text AS id, (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS bytes FROM pg_control_system()",
  );
  await createRepositoryIdentity(storage, { systemIdentifier: row.id, walSegmentSize: Number(row.bytes) });
  return storage;
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function pushOptions(cluster: Cluster, storage: Storage, extra: Partial<PushOptions> = {}) {
  const logOut = new PassThrough();
  let log = '';
  logOut.on('data', (c: Buffer) => (log += c.toString()));
  const options: PushOptions = {
    pgdata: cluster.pgdata,
    storage,
    config: {
      compression: 'gzip',
      compressionLevel: undefined,
      concurrency: 2,
      partSize: 1024 * 1024,
      retries: 0,
      pg: { host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres', password: undefined },
    },
    log: createLogger(logOut, 'text', true),
    signal: new AbortController().signal,
    version: '0.0.0-test',
    progress: (label) => createProgress({ out: logOut, interactive: false, label }),
    // These clusters archive to /bin/true or nowhere: no WAL reaches the repository.
    archiveCheck: false,
    ...extra,
  };
  return { options, log: () => log };
}

async function readManifest(storage: Storage, key: string): Promise<ManifestEntry[]> {
  const text = (await readSmallObject(storage, key)).toString('utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ManifestEntry);
}

test('a backup of a running cluster is stored, listed, and records what the server reported', async (t) => {
  const tsDir = await makeTempDir('ts', { owner: 'postgres' });
  t.teardown(tsDir.cleanup);
  const cluster = await startCluster({ archiveCommand: '/bin/true', walSegSizeMB: 1 });
  t.teardown(() => cluster.destroy());
  await cluster.query(`CREATE TABLESPACE ts LOCATION '${tsDir.path}'`);
  await cluster.query('CREATE TABLE in_ts TABLESPACE ts AS SELECT generate_series(1, 10000) AS n');
  await cluster.query("CREATE TABLE big AS SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS n");
  await cluster.query('CREATE UNLOGGED TABLE scratch AS SELECT generate_series(1, 1000) AS n');
  const [{ oid }] = await cluster.query<{ oid: string }>("SELECT oid::text AS oid FROM pg_tablespace WHERE spcname = 'ts'");
  const [{ path: scratchPath }] = await cluster.query<{ path: string }>("SELECT pg_relation_filepath('scratch') AS path");
  const [{ path: bigPath }] = await cluster.query<{ path: string }>("SELECT pg_relation_filepath('big') AS path");
  const [{ path: tsPath }] = await cluster.query<{ path: string }>("SELECT pg_relation_filepath('in_ts') AS path");
  const [{ id }] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');

  const storage = await repositoryFor(cluster);
  const { options, log } = pushOptions(cluster, storage);
  const meta = await pushBackup(options);

  t.deepEqual(
    (await listBackups(storage)).map((m) => m.name),
    [meta.name],
  );
  t.is(meta.name, `base_${meta.startWalSegment}`);
  t.is(meta.systemIdentifier, id);
  t.is(meta.walSegmentSize, 1024 * 1024);
  t.is(meta.timeline, 1);
  t.true(parseLsn(meta.stopLsn) > parseLsn(meta.startLsn));
  t.true(meta.stopWalSegment >= meta.startWalSegment);
  t.regex(meta.backupLabel, new RegExp(`^START WAL LOCATION: ${meta.startLsn} \\(file ${meta.startWalSegment}\\)$`, 'm'));
  t.deepEqual(meta.tablespaces, [{ oid, location: tsDir.path }]);
  t.regex(meta.tablespaceMap, new RegExp(`^${oid} ${tsDir.path}$`, 'm'));
  t.is(meta.codec, 'gzip');
  t.is(meta.gcwalVersion, '0.0.0-test');
  t.true(meta.parts.length >= 3, `${meta.parts.length} parts`);
  t.is(
    meta.storedSize,
    meta.parts.reduce((n, p) => n + p.storedSize, 0),
  );

  const manifest = await readManifest(storage, meta.manifest.key);
  t.is(manifest.length, meta.manifest.entries);
  const byPath = new Map(manifest.map((e) => [e.path, e]));
  const files = manifest.filter((e) => e.type === 'file');
  t.is(meta.fileCount, files.length);
  t.is(
    meta.rawSize,
    files.reduce((n, e) => n + e.size, 0),
  );
  for (const p of ['PG_VERSION', 'postgresql.conf', 'global/pg_control', bigPath, `${scratchPath}_init`]) t.is(byPath.get(p)?.type, 'file', p);
  for (const p of ['postmaster.pid', 'postmaster.opts', scratchPath]) t.false(byPath.has(p), p);
  t.is(byPath.get('pg_wal')?.type, 'directory');
  t.is(byPath.get('pg_wal/archive_status')?.type, 'directory');
  t.false(manifest.some((e) => e.path.startsWith('pg_wal/0')));
  t.deepEqual(byPath.get(`pg_tblspc/${oid}`), { ...byPath.get(`pg_tblspc/${oid}`)!, type: 'symlink', target: tsDir.path });
  // pg_relation_filepath gives pg_tblspc/<oid>/PG_.../<db>/<rel> for a table in a tablespace.
  t.is(byPath.get(tsPath)?.type, 'file', tsPath);
  t.is(byPath.get('global/pg_control')!.part, meta.parts.length - 1);
  t.is(byPath.get(bigPath)!.size > 4 * 1024 * 1024, true);

  t.regex(log(), new RegExp(`backup ${meta.name} started`));
  t.notRegex(await cluster.logTail(200), /aborting backup/);
});

test("a directory that is not the server's data directory is refused before the backup starts", async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const other = await makeTempDir('notpgdata');
  t.teardown(other.cleanup);
  const storage = await repository();
  const err = await t.throwsAsync(pushBackup(pushOptions(cluster, storage, { pgdata: other.path }).options), { instanceOf: UsageError });
  t.regex(err!.message, /is not the data directory of the server/);
  t.deepEqual(await listBackups(storage), []);
  t.is(await storage.stat(REPOSITORY_KEY), undefined);
});

test('a repository of another cluster is refused', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.destroy());
  const storage = await repository();
  await writeSmallObject(
    storage,
    REPOSITORY_KEY,
    JSON.stringify({ format: 1, systemIdentifier: '1', walSegmentSize: 16 * 1024 * 1024, created: new Date().toISOString() }),
  );
  await t.throwsAsync(pushBackup(pushOptions(cluster, storage).options), { instanceOf: ClusterMismatchError });
});

test('a failed upload stops the backup on the server and leaves no backup.json', async (t) => {
  const cluster = await startCluster({ archiveCommand: '/bin/true' });
  t.teardown(() => cluster.destroy());
  const real = await repositoryFor(cluster);
  let parts = 0;
  // The real driver, except that the second part upload fails for good.
  const failing: Storage = {
    url: real.url,
    stat: (k, o) => real.stat(k, o),
    read: (k, o) => real.read(k, o),
    list: (p, o) => real.list(p, o),
    delete: (k, o) => real.delete(k, o),
    write: (k, s, o) => {
      if (k.endsWith('.tar') && ++parts === 2) {
        s.resume();
        return Promise.reject(new StorageError('disk full', false));
      }
      return real.write(k, s, o);
    },
  };
  const { options, log } = pushOptions(cluster, failing, {
    config: { ...pushOptions(cluster, failing).options.config, partSize: 1024 * 1024, concurrency: 1 },
  });
  await t.throwsAsync(pushBackup(options), { instanceOf: StorageError, message: 'disk full' });
  t.deepEqual(await listBackups(real), []);
  t.regex(log(), /backup base_\w+ started/);
  // The server was told to stop: it did not have to abort the backup when the session ended.
  await cluster.query('SELECT 1');
  t.notRegex(await cluster.logTail(200), /aborting backup/);
  // A new backup works, in a folder of its own.
  const meta = await pushBackup(pushOptions(cluster, real).options);
  t.deepEqual(
    (await listBackups(real)).map((m) => m.name),
    [meta.name],
  );
});

test('a backup name gets the start LSN as a suffix when its folder is taken', async (t) => {
  const storage = await repository();
  const segment = '000000010000000000000002';
  t.is(await chooseBackupName(storage, segment, 0x2000028n), `base_${segment}`);
  await writeSmallObject(storage, backupPartKey(`base_${segment}`, 0), 'orphan of a failed backup');
  t.is(await chooseBackupName(storage, segment, 0x2000028n), `base_${segment}_02000028`);
  await writeSmallObject(storage, backupPartKey(`base_${segment}_02000028`, 0), 'another');
  await t.throwsAsync(chooseBackupName(storage, segment, 0x2000028n), { instanceOf: ConflictError });
});
