/**
 * `gcwal repo-create` is the only way a repository comes to be: every other
 * command, given a file:// repository whose directory is missing (an
 * unmounted volume, a typo) or empty, fails with exit 13 and creates nothing,
 * so PostgreSQL keeps the segment and nobody archives into a second,
 * unknown archive; wal-fetch stops archive recovery instead of ending it.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { main } from '../../../agent/main.ts';
import { ExitCode } from '../../../core/errors.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let work: TempDir;
let cluster: Cluster;
let systemIdentifier: string;
let segment: string; // a closed segment, still in pg_wal (the cluster archives nothing)
let counter = 0;

test.before(async () => {
  work = await makeTempDir('repo-create');
  cluster = await startCluster({ walSegSizeMB: 1 });
  [{ id: systemIdentifier }] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  await cluster.query('CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n');
  segment = path.join(cluster.pgdata, 'pg_wal', await cluster.switchWal());
});

test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
});

/** A repository location that does not exist yet. */
function location(): { dir: string; url: string } {
  const dir = path.join(work.path, `repo-${++counter}`, 'archive');
  return { dir, url: pathToFileURL(dir).href };
}

async function run(argv: string[], repo: string, cwd = work.path) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(
    argv,
    { GCWAL_REPO: repo, GCWAL_RETRIES: '0', ...cluster.env },
    { stdout, stderr, interactive: false, cwd, signal: new AbortController().signal },
  );
  return { code, out, err };
}

/** A directory restore_command could run in: archive recovery, a standby, or none (a shell). */
async function recoveryDir(mode: 'archive recovery' | 'a standby' | 'a shell'): Promise<string> {
  const dir = path.join(work.path, `cwd-${++counter}`);
  await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
  if (mode !== 'a shell') await writeFile(path.join(dir, 'PG_VERSION'), '15\n');
  if (mode === 'a standby') await writeFile(path.join(dir, 'standby.signal'), '');
  return dir;
}

test("repo-create creates the missing directory with mode 0700 and the cluster's gcwal.json, and exits 0 again for the same cluster", async (t) => {
  const { dir, url } = location();
  const first = await run(['repo-create'], url);
  t.is(first.code, 0, first.err);
  t.regex(first.err, /created repository/);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  const identity = JSON.parse(await readFile(path.join(dir, 'gcwal.json'), 'utf8'));
  t.like(identity, { format: 1, systemIdentifier, walSegmentSize: 1024 * 1024 });

  const again = await run(['repo-create'], url);
  t.is(again.code, 0, again.err);
  t.regex(again.err, /already belongs to this cluster/);
  t.deepEqual(JSON.parse(await readFile(path.join(dir, 'gcwal.json'), 'utf8')), identity, 'gcwal.json is not rewritten');
});

test('repo-create refuses a repository of another cluster with exit 4', async (t) => {
  const { url } = location();
  const other = new FileStorage(url);
  await other.createRoot();
  await createRepositoryIdentity(other, { systemIdentifier: '7000000000000000001', walSegmentSize: 1024 * 1024 });
  const r = await run(['repo-create'], url);
  t.is(r.code, ExitCode.clusterMismatch, r.err);
  t.regex(r.err, /belongs to cluster 7000000000000000001/);
});

test('repo-create takes an existing empty directory', async (t) => {
  const { dir, url } = location();
  await mkdir(path.join(dir, 'lost+found'), { recursive: true });
  const r = await run(['repo-create'], url);
  t.is(r.code, 0, r.err);
  t.true(existsSync(path.join(dir, 'gcwal.json')));
});

test('repo-create leaves a non-empty directory without gcwal.json alone (exit 10) unless --force', async (t) => {
  const { dir, url } = location();
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'notes.txt'), "someone else's\n");
  const refused = await run(['repo-create'], url);
  t.is(refused.code, ExitCode.destinationNotEmpty, refused.err);
  t.regex(refused.err, /is not empty \(it holds notes\.txt\) but has no gcwal\.json.*--force/);
  t.deepEqual(await readdir(dir), ['notes.txt'], 'nothing written');

  const forced = await run(['repo-create', '--force'], url);
  t.is(forced.code, 0, forced.err);
  t.true(existsSync(path.join(dir, 'gcwal.json')));
});

test('wal-push into a missing directory exits 13 naming repo-create and creates nothing', async (t) => {
  const { dir, url } = location();
  const r = await run(['wal-push', segment], url);
  t.is(r.code, ExitCode.repoMissing, r.err);
  t.regex(r.err, /has no gcwal\.json.*gcwal repo-create/);
  t.false(existsSync(path.dirname(dir)), 'the directory still does not exist');
});

test('wal-push of a history file into a repository without identity exits 13 too', async (t) => {
  const { dir, url } = location();
  const history = path.join(work.path, '00000002.history');
  await writeFile(history, '1\t0/3000000\tno recovery target specified\n');
  const r = await run(['wal-push', history], url);
  t.is(r.code, ExitCode.repoMissing, r.err);
  t.false(existsSync(path.dirname(dir)));
});

test('wal-push into an empty directory exits 13 and writes nothing in it', async (t) => {
  const { dir, url } = location();
  await mkdir(dir, { recursive: true });
  const r = await run(['wal-push', segment], url);
  t.is(r.code, ExitCode.repoMissing, r.err);
  t.deepEqual(await readdir(dir), []);
});

for (const [mode, expected] of [
  ['a shell', ExitCode.repoMissing],
  ['a standby', ExitCode.repoMissing],
  ['archive recovery', ExitCode.recoveryFatal],
] as const) {
  test(`wal-fetch from a missing directory in ${mode} exits ${expected}, never 1`, async (t) => {
    const { dir, url } = location();
    const cwd = await recoveryDir(mode);
    const r = await run(['wal-fetch', path.basename(segment), 'pg_wal/RECOVERYXLOG'], url, cwd);
    t.is(r.code, expected, r.err);
    t.regex(r.err, /has no gcwal\.json/);
    // Nothing PostgreSQL could read: at most the prefetcher's own spool (asked for the next segments before the fetch), holding no segment.
    t.deepEqual(
      (await readdir(path.join(cwd, 'pg_wal'))).filter((n) => n !== '.gcwal-spool'),
      [],
    );
    const spool = path.join(cwd, 'pg_wal', '.gcwal-spool');
    if (existsSync(spool))
      t.deepEqual(
        (await readdir(spool)).filter((n) => /^[0-9A-F]{24}$/.test(n)),
        [],
      );
    t.false(existsSync(path.dirname(dir)));
  });
}

test('backup-push, backup-fetch, backup-list, status and delete on a missing directory exit 13 and create nothing', async (t) => {
  const { dir, url } = location();
  const dest = path.join(work.path, `restore-${++counter}`);
  for (const argv of [['backup-push', cluster.pgdata], ['backup-fetch', dest, 'LATEST'], ['backup-list'], ['status'], ['delete', '--retain-full', '1']]) {
    const r = await run(argv, url);
    t.is(r.code, ExitCode.repoMissing, `${argv[0]}: ${r.err}`);
    t.regex(r.err, /gcwal repo-create/, argv[0]);
  }
  t.false(existsSync(path.dirname(dir)));
  const [{ n }] = await cluster.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = 'gcwal backup-push'",
  );
  t.is(n, 0, 'backup-push did not leave a session behind');
});

test('after repo-create wal-push, wal-fetch and backup-list work', async (t) => {
  const { url } = location();
  t.is((await run(['repo-create'], url)).code, 0);
  const pushed = await run(['wal-push', segment], url);
  t.is(pushed.code, 0, pushed.err);
  const cwd = await recoveryDir('archive recovery');
  const fetched = await run(['wal-fetch', path.basename(segment), 'pg_wal/RECOVERYXLOG'], url, cwd);
  t.is(fetched.code, 0, fetched.err);
  t.deepEqual(await readFile(path.join(cwd, 'pg_wal', 'RECOVERYXLOG')), await readFile(segment));
  const missing = await run(['wal-fetch', '0000000100000000000000FF', 'pg_wal/RECOVERYXLOG'], url, cwd);
  t.is(missing.code, ExitCode.notFound, 'a segment the archive lacks is still "not found"');
  const listed = await run(['backup-list'], url);
  t.is(listed.code, 0, listed.err);
});
