/**
 * GCWAL_REPO naming a bucket that does not exist, with the real CLI against
 * the local GCS emulator. GCS answers 404 `notFound` for a missing bucket as
 * for a missing object; if gcwal took it for "no such WAL file", wal-fetch
 * would exit 1 and PostgreSQL would end archive recovery early and promote
 * with data missing. Instead the repository is missing (exit 13, naming the
 * bucket and repo-create; 126 during archive recovery, so PostgreSQL stops),
 * and so is one whose prefix in an existing bucket holds no gcwal.json (a
 * typo in the prefix): nothing is pushed there, no second archive begins.
 *
 * The agent holds its roles project-wide, as with a project-level IAM
 * binding: to an identity without any permission on the bucket name GCS
 * (and the emulator) answer 403 instead, which is an auth error anyway.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { restoreCommand } from '../../../core/restore/recovery-config.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../../local/testkit/users.ts';

const MISSING = 'no-such-bucket';
const MISSING_REPO = `gs://${MISSING}/clusters/db1`;
const BUCKET_ERROR = new RegExp(`bucket ${MISSING} does not exist`);

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
let cluster: Cluster;
let segment: string; // a real segment, copied out of pg_wal by the cluster's archive_command

/** What gcwal gets: the stack's endpoint and metadata server, the mistyped bucket. */
function env(): Record<string, string> {
  return { ...stack.env, GCWAL_REPO: MISSING_REPO, GCWAL_RETRIES: '1', GCWAL_RETRY_MAX_DELAY: '1' };
}

async function ownedByPostgres(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(dir, pg.uid, pg.gid);
  }
}

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('missing-bucket', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: 'clusters/db1' });
  for (const role of ['roles/storage.objectCreator', 'roles/storage.objectViewer'] as const) stack.authority.grant(stack.agentIdentity, role);
  const copies = path.join(work.path, 'copies');
  await ownedByPostgres(copies);
  cluster = await startCluster({ walSegSizeMB: 1, archiveCommand: `cp %p ${copies}/%f`, serverEnv: env() });
  await cluster.query('CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n');
  const name = await cluster.switchWal();
  await cluster.waitForArchived(name);
  segment = path.join(copies, name);
});

test.after.always(async () => {
  await cluster?.destroy();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

test('wal-push to a bucket that does not exist exits 13 naming the bucket and GCWAL_REPO', async (t) => {
  const r = await runGcwal(agent.command, ['wal-push', segment], { asUser: 'postgres', env: env() });
  t.is(r.code, 13, r.stderr);
  t.regex(r.stderr, BUCKET_ERROR);
  t.regex(r.stderr, /GCWAL_REPO/);
  t.notRegex(r.stderr, /not found|not in the archive/i);
});

for (const [where, signals, expected] of [
  ['outside a data directory', undefined, 13],
  ['during archive recovery', ['PG_VERSION'], 126],
  ['on a standby', ['PG_VERSION', 'standby.signal'], 13],
] as const) {
  test(`wal-fetch from a bucket that does not exist fails ${where} with exit ${expected}, never 1`, async (t) => {
    const dir = path.join(work.path, `fetch-${where.replace(/\W+/g, '-')}`);
    await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
    for (const file of signals ?? []) await writeFile(path.join(dir, file), file === 'PG_VERSION' ? '15\n' : '');
    await chmod(dir, 0o777);
    await chmod(path.join(dir, 'pg_wal'), 0o777);
    const r = await runGcwal(agent.command, ['wal-fetch', path.basename(segment), 'pg_wal/RECOVERYXLOG'], { asUser: 'postgres', env: env(), cwd: dir });
    t.not(r.code, 1, 'a missing bucket is not a missing WAL file');
    t.is(r.code, expected, r.stderr);
    t.regex(r.stderr, BUCKET_ERROR);
    t.regex(r.stderr, /GCWAL_REPO/);
    t.notRegex(r.stderr, /not in the archive/);
    await nothingReadable(t, dir);
  });
}

/** An existing bucket, a prefix nobody ran repo-create for (a typo in GCWAL_REPO). */
function emptyPrefixEnv(): Record<string, string> {
  return { ...env(), GCWAL_REPO: `gs://${stack.bucket}/clusters/db1-typo` };
}

/** Every object under a prefix of the stack's bucket, as an admin lists them. */
async function objectsUnder(prefix: string): Promise<string[]> {
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=${encodeURIComponent(prefix)}`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
  });
  return (((await res.json()) as { items?: { name: string }[] }).items ?? []).map((i) => i.name);
}

test('wal-push into an empty prefix of an existing bucket exits 13 and starts no second archive', async (t) => {
  const r = await runGcwal(agent.command, ['wal-push', segment], { asUser: 'postgres', env: emptyPrefixEnv() });
  t.is(r.code, 13, r.stderr);
  t.regex(r.stderr, /repository gs:\/\/.*\/clusters\/db1-typo has no gcwal\.json .*gcwal repo-create/);
  t.deepEqual(await objectsUnder('clusters/db1-typo'), []);
});

for (const [where, signals, expected] of [
  ['outside a data directory', undefined, 13],
  ['during archive recovery', ['PG_VERSION'], 126],
] as const) {
  test(`wal-fetch from an empty prefix of an existing bucket fails ${where} with exit ${expected}, never 1`, async (t) => {
    const dir = path.join(work.path, `fetch-prefix-${where.replace(/\W+/g, '-')}`);
    await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
    for (const file of signals ?? []) await writeFile(path.join(dir, file), file === 'PG_VERSION' ? '15\n' : '');
    await chmod(dir, 0o777);
    await chmod(path.join(dir, 'pg_wal'), 0o777);
    const r = await runGcwal(agent.command, ['wal-fetch', path.basename(segment), 'pg_wal/RECOVERYXLOG'], {
      asUser: 'postgres',
      env: emptyPrefixEnv(),
      cwd: dir,
    });
    t.is(r.code, expected, r.stderr);
    t.regex(r.stderr, /has no gcwal\.json/);
    await nothingReadable(t, dir);
  });
}

test.serial('repo-create on gs:// creates the repository for the cluster, idempotently, and then the same segment archives and fetches', async (t) => {
  const repoEnv = { ...env(), GCWAL_REPO: `gs://${stack.bucket}/clusters/db1-created` };
  for (let i = 0; i < 2; i++) {
    const created = await runGcwal(agent.command, ['repo-create'], { asUser: 'postgres', env: { ...cluster.env, ...repoEnv } });
    t.is(created.code, 0, created.stderr);
  }
  t.deepEqual(await objectsUnder('clusters/db1-created/'), ['clusters/db1-created/gcwal.json']);
  const pushed = await runGcwal(agent.command, ['wal-push', segment], { asUser: 'postgres', env: repoEnv });
  t.is(pushed.code, 0, pushed.stderr);
  const dir = path.join(work.path, 'fetch-created');
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  const fetched = await runGcwal(agent.command, ['wal-fetch', path.basename(segment), path.join(dir, 'seg')], { asUser: 'postgres', env: repoEnv });
  t.is(fetched.code, 0, fetched.stderr);
  t.deepEqual(await readFile(path.join(dir, 'seg')), await readFile(segment));
});

test.serial('repo-create on a bucket that does not exist exits 13 and says the bucket does not exist', async (t) => {
  const r = await runGcwal(agent.command, ['repo-create'], { asUser: 'postgres', env: { ...cluster.env, ...env() } });
  t.is(r.code, 13, r.stderr);
  t.regex(r.stderr, BUCKET_ERROR);
});

test('PostgreSQL in archive recovery from a bucket that does not exist stops instead of promoting', async (t) => {
  // The real consequence: restore_command as backup-fetch writes it, in a
  // cluster that has WAL of its own in pg_wal. Had wal-fetch exited 1, the
  // server would replay that WAL, find nothing more, and promote.
  const command = restoreCommand(MISSING_REPO, agent.command);
  await cluster.query(`ALTER SYSTEM SET restore_command = '${command.replace(/'/g, "''")}'`);
  await cluster.stop('fast');
  await writeFile(path.join(cluster.pgdata, 'recovery.signal'), '');
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(path.join(cluster.pgdata, 'recovery.signal'), pg.uid, pg.gid);
  }
  await t.throwsAsync(cluster.start(), undefined, 'the server does not come up');
  for (let i = 0; i < 100 && (await cluster.isRunning()); i++) await sleep(200);
  t.false(await cluster.isRunning(), 'the postmaster shut down');
  const log = await readFile(cluster.logFile, 'utf8');
  t.regex(log, /FATAL: {2}could not restore file "[0-9A-F.a-z]+" from archive/);
  t.regex(log, BUCKET_ERROR, 'gcwal said why, in the server log');
  t.notRegex(log, /selected new timeline ID|archive recovery complete/);
  t.true(existsSync(path.join(cluster.pgdata, 'recovery.signal')), 'still in recovery: starting again resumes it');
  t.false(existsSync(path.join(cluster.pgdata, 'pg_wal', '00000002.history')), 'no new timeline');
});

/** Nothing PostgreSQL could read in pg_wal: at most the prefetcher's own spool (asked for before the fetch), holding no segment. */
async function nothingReadable(t: ExecutionContext, dir: string): Promise<void> {
  const walDir = path.join(dir, 'pg_wal');
  t.deepEqual(
    (await readdir(walDir)).filter((n) => n !== '.gcwal-spool'),
    [],
    'nothing written',
  );
  const spool = path.join(walDir, '.gcwal-spool');
  if (existsSync(spool))
    t.deepEqual(
      (await readdir(spool)).filter((n) => /^[0-9A-F]{24}$/.test(n)),
      [],
    );
}

for (const [command, args] of [
  ['backup-push', () => [cluster.pgdata]],
  ['backup-fetch', () => [path.join(work.path, 'restore-into-typo'), 'LATEST']],
  ['backup-list', () => []],
  ['status', () => []],
] as const) {
  // Serial: before the recovery test above stops the cluster, which backup-push could otherwise reach first.
  test.serial(`${command} against an empty prefix of an existing bucket exits 13 naming repo-create, and writes nothing there`, async (t) => {
    const r = await runGcwal(agent.command, [command, ...args()], { asUser: 'postgres', env: { ...cluster.env, ...emptyPrefixEnv() } });
    t.is(r.code, 13, r.stderr);
    t.regex(r.stderr, /repository gs:\/\/.*\/clusters\/db1-typo has no gcwal\.json .*gcwal repo-create/);
    t.deepEqual(await objectsUnder('clusters/db1-typo'), []);
    if (command === 'backup-fetch') t.false(existsSync(args()[0]!), 'no restore directory made');
  });
}
