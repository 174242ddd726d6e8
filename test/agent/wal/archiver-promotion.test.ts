/**
 * Asynchronous archiving (GCWAL_ARCHIVE_ASYNC=on) across a standby and its
 * promotion, with real PostgreSQL (issue 17): a streaming standby with
 * `archive_mode = always` archives into the primary's repository through its
 * own archiver; promoted, its timeline 2 `.history` and `.partial` files are
 * pushed by PostgreSQL's own calls, and a restore from the primary's backup
 * follows timeline 2 to the rows written after the promotion. The primary,
 * the standby and the repository are shared by the tests of this file.
 *
 * wal_recycle is off, so that every segment file starts zero-filled on both
 * servers: the standby's copy of a segment the primary switched away from
 * is then byte for byte the primary's, as the repository requires of two
 * pushes of one name.
 */
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ARCHIVER_DIR, ARCHIVER_PID, LOG_FILE } from '../../../agent/wal/archiver-control.ts';
import { openStorage } from '../../../core/storage/open.ts';
import { type Cluster, startCluster, startClusterFromDirectory } from '../../../local/testkit/cluster.ts';
import { type InstalledAgent, installAgent } from '../../../local/testkit/install.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { checkRepository } from '../crash/kill.ts';

let agent: InstalledAgent;
let work: TempDir;
let env: Record<string, string>;
let primary: Cluster;
let standby: Cluster;
const cleanups: (() => Promise<unknown>)[] = [];

async function until(what: string, check: () => Promise<boolean>, ms = 120_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) if (await check().catch(() => false)) return;
  throw new Error(`${what}: not within ${ms} ms`);
}

async function rows(cluster: Cluster): Promise<number> {
  return Number((await cluster.query<{ n: string }>('SELECT count(*) AS n FROM items'))[0]!.n);
}

const insert = (cluster: Cluster, batch: string) =>
  cluster.query(`INSERT INTO items (batch, payload) SELECT '${batch}', repeat(md5(g::text), 4) FROM generate_series(1, 3000) g`);

const gcwal = (args: string[], extra: Record<string, string> = {}) => runGcwal(agent.command, args, { asUser: 'postgres', env: { ...env, ...extra } });

const archiverLog = async (cluster: Cluster) =>
  (await readFile(path.join(cluster.pgdata, 'pg_wal', ARCHIVER_DIR, LOG_FILE), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { message: string; segment?: string });

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('archiver-promotion', { owner: 'postgres' });
  env = { GCWAL_REPO: `file://${path.join(work.path, 'repo')}`, GCWAL_ARCHIVE_ASYNC: 'on' };
  primary = await startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: env, settings: { wal_recycle: false } });
  cleanups.push(() => primary.destroy());
  await runRepoCreate(agent.command, primary, env);
  await primary.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
  await insert(primary, 'A');
  const pushed = await runGcwal(agent.command, ['backup-push', primary.pgdata], { asUser: 'postgres', env: { ...primary.env, ...env } });
  if (pushed.code !== 0) throw new Error(`backup-push: ${pushed.stderr}`);

  const dir = path.join(work.path, 'standby');
  const fetched = await gcwal(['backup-fetch', dir, 'LATEST', '--recovery', '--gcwal-command', agent.command]);
  if (fetched.code !== 0) throw new Error(`backup-fetch: ${fetched.stderr}`);
  await rm(path.join(dir, 'recovery.signal'));
  await writeFile(path.join(dir, 'standby.signal'), '');
  standby = await startClusterFromDirectory(dir, {
    serverEnv: env,
    settings: {
      primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres application_name=standby`,
      archive_mode: 'always',
      archive_command: `${agent.command} wal-push %p`,
      wal_recycle: false,
    },
  });
  cleanups.push(() => standby.destroy());
  await until(
    'the standby streaming',
    async () => (await primary.query("SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'")).length === 1,
  );
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

test.serial("a standby with archive_mode = always archives what it streams through its own archiver, finding the primary's objects identical", async (t) => {
  let last = '';
  for (const batch of ['B', 'C']) {
    await insert(primary, batch);
    last = await primary.switchWal();
  }
  await primary.waitForArchived(last, 120_000);
  await standby.waitForArchived(last, 120_000);
  const [stats] = await standby.query<{ archived_count: string; failed_count: string }>('SELECT archived_count, failed_count FROM pg_stat_archiver');
  t.true(Number(stats!.archived_count) > 0);
  t.is(Number(stats!.failed_count), 0, 'no push of the standby met different content under a name');

  const pid = async (c: Cluster) => (await readFile(path.join(c.pgdata, 'pg_wal', ARCHIVER_DIR, ARCHIVER_PID), 'utf8').catch(() => '')).trim();
  t.truthy(await pid(standby), 'the standby runs its own archiver');
  t.not(await pid(standby), await pid(primary));
  t.true(
    (await archiverLog(standby)).some((l) => l.message.startsWith('archived ')),
    "the standby's archiver pushed its segments",
  );
});

test.serial("a promotion's timeline 2 history and partial files are archived by the call itself, and a restore follows timeline 2", async (t) => {
  // Rows in a segment the primary has not finished: the promotion then leaves timeline 1's part of it as a .partial.
  await insert(primary, 'D');
  // The standby has everything the primary wrote.
  const want = await rows(primary);
  await until('the standby caught up', async () => (await rows(standby)) === want);
  await standby.promote();
  await insert(standby, 'after promotion');
  const onTimeline2 = await standby.switchWal();
  t.is(onTimeline2.slice(0, 8), '00000002');
  await standby.waitForArchived(onTimeline2, 120_000);
  const total = await rows(standby);

  const keys = await readdir(path.join(work.path, 'repo', 'wal'));
  t.true(keys.includes('00000002.history'), keys.join(' '));
  const partial = keys.find((k) => /^00000001[0-9A-F]{16}\.partial$/.test(k));
  t.truthy(partial, keys.join(' '));
  const byArchiver = new Set((await archiverLog(standby)).map((l) => l.segment));
  t.false(byArchiver.has('00000002.history'));
  t.false(byArchiver.has(partial));
  await t.notThrowsAsync(checkRepository(await openStorage(env.GCWAL_REPO!)));

  // A restore of the primary's backup, to the end of the archive on the latest timeline: timeline 2's rows.
  const dir = path.join(work.path, 'restored');
  const fetched = await gcwal(['backup-fetch', dir, 'LATEST', '--recovery', '--gcwal-command', agent.command]);
  t.is(fetched.code, 0, fetched.stderr);
  const restored = await startClusterFromDirectory(dir, { serverEnv: { GCWAL_REPO: env.GCWAL_REPO! }, settings: { archive_mode: 'off' } });
  cleanups.push(() => restored.destroy());
  await until('the restore ending its recovery', async () => (await restored.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r === false);
  t.is(await rows(restored), total);
  t.is(Number((await restored.query<{ n: string }>("SELECT count(*) AS n FROM items WHERE batch = 'after promotion'"))[0]!.n), 3000);
  const [{ tli }] = await restored.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
  t.true(tli >= 2, `timeline ${tli}`);
});
