/**
 * GCWAL_REPO naming a bucket that does not exist, with the real CLI against
 * the local GCS emulator. GCS answers 404 `notFound` for a missing bucket as
 * for a missing object; if gcwal took it for "no such WAL file", wal-fetch
 * would exit 1 and PostgreSQL would end archive recovery early and promote
 * with data missing. Instead wal-fetch fails as a storage error (126 during
 * archive recovery, so PostgreSQL stops) and wal-push exits 7 naming the bucket.
 *
 * The agent holds its roles project-wide, as with a project-level IAM
 * binding: to an identity without any permission on the bucket name GCS
 * (and the emulator) answer 403 instead, which is an auth error anyway.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { restoreCommand } from '../../../core/restore/recovery-config.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startCluster, type Cluster } from '../../helpers/cluster.ts';
import { installAgent, type InstalledAgent } from '../../helpers/install.ts';
import { runGcwal } from '../../helpers/run.ts';
import { makeTempDir, type TempDir } from '../../helpers/tmp.ts';
import { postgresUser, runningAsRoot } from '../../helpers/users.ts';

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

test('wal-push to a bucket that does not exist exits 7 naming the bucket and GCWAL_REPO', async (t) => {
  const r = await runGcwal(agent.command, ['wal-push', segment], { asUser: 'postgres', env: env() });
  t.is(r.code, 7, r.stderr);
  t.regex(r.stderr, BUCKET_ERROR);
  t.regex(r.stderr, /GCWAL_REPO/);
  t.notRegex(r.stderr, /not found|not in the archive/i);
});

for (const [where, signals, expected] of [
  ['outside a data directory', undefined, 7],
  ['during archive recovery', ['PG_VERSION'], 126],
  ['on a standby', ['PG_VERSION', 'standby.signal'], 7],
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
    t.deepEqual(await readdir(path.join(dir, 'pg_wal')), [], 'nothing written');
  });
}

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
