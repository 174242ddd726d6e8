/**
 * backup-fetch against real PostgreSQL 15: a cluster with a tablespace is
 * backed up by backup-push, restored with the tablespace relocated, started,
 * and recovers from the archive to the end (the rows written after the
 * backup included). The restored data directory keeps its tablespace at the
 * new place across the server's own tablespace_map processing.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, chown } from 'node:fs/promises';
import path from 'node:path';
import { startCluster, startClusterFromDirectory } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../../local/testkit/users.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';

let agent: InstalledAgent;
let work: TempDir;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('restore-cluster', { owner: 'postgres' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

async function postgresDir(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(dir, pg.uid, pg.gid);
  }
}

test('a cluster with a tablespace is restored with the tablespace relocated and recovers to the end of the archive', async (t) => {
  const repo = `file://${path.join(work.path, 'repo')}`;
  const serverEnv = { GCWAL_REPO: repo };
  const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv });
  await runRepoCreate(agent.command, source, serverEnv);
  cleanups.push(() => source.destroy());
  const original = path.join(work.path, 'ts-original');
  await postgresDir(original);
  await source.query(`CREATE TABLESPACE fast LOCATION '${original}'`);
  await source.query('CREATE TABLE on_fast (n int) TABLESPACE fast');
  await source.query('CREATE TABLE on_default (n int)');
  await source.query('INSERT INTO on_fast SELECT generate_series(1, 5000)');
  await source.query('INSERT INTO on_default SELECT generate_series(1, 3000)');
  const [{ oid }] = await source.query<{ oid: string }>("SELECT oid::text FROM pg_tablespace WHERE spcname = 'fast'");

  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, GCWAL_REPO: repo } });
  t.is(pushed.code, 0, pushed.stderr);

  // Written after the backup: only WAL replay brings these back.
  await source.query('INSERT INTO on_fast SELECT generate_series(5001, 6000)');
  await source.query('INSERT INTO on_default SELECT generate_series(3001, 3500)');
  await source.waitForArchived(await source.switchWal(), 60_000);

  // The tablespace's location comes from the repository: unconfirmed, the restore stops before writing and names it.
  const refusedDest = path.join(work.path, 'refused');
  const unconfirmed = await runGcwal(agent.command, ['backup-fetch', refusedDest, 'LATEST', '--recovery', '--gcwal-command', agent.command], {
    asUser: 'postgres',
    env: { GCWAL_REPO: repo },
  });
  t.is(unconfirmed.code, 2, unconfirmed.stderr);
  t.regex(unconfirmed.stderr, new RegExp(`restores tablespace ${oid} at "${original}", outside the data directory; .*--tablespaces-as-recorded`));
  t.false(existsSync(refusedDest));

  // Confirmed, the original location is in use by the source: refused before anything is written.
  const refused = await runGcwal(
    agent.command,
    ['backup-fetch', refusedDest, 'LATEST', '--recovery', '--tablespaces-as-recorded', '--gcwal-command', agent.command],
    { asUser: 'postgres', env: { GCWAL_REPO: repo } },
  );
  t.is(refused.code, 10, refused.stderr);
  t.regex(refused.stderr, new RegExp(`destination ${original} is not empty`));
  t.false(existsSync(refusedDest));

  const dest = path.join(work.path, 'restored');
  const moved = path.join(work.path, 'ts-moved');
  const fetched = await runGcwal(
    agent.command,
    ['backup-fetch', dest, 'LATEST', '--recovery', '--tablespace-map', `${oid}=${moved}`, '--gcwal-command', agent.command],
    {
      asUser: 'postgres',
      env: { GCWAL_REPO: repo },
    },
  );
  t.is(fetched.code, 0, fetched.stderr);
  t.regex(fetched.stdout, new RegExp(`tablespace ${oid} restored into ${moved}\n`));
  t.regex(fetched.stdout, new RegExp(`start PostgreSQL with: pg_ctl -D ${dest} start\n$`));
  t.is(await readFile(path.join(dest, 'tablespace_map'), 'utf8'), `${oid} ${moved}\n`);
  t.false(existsSync(path.join(dest, '.gcwal-restore-incomplete')));

  const restored = await startClusterFromDirectory(dest, { serverEnv });
  cleanups.push(() => restored.destroy());
  await restored.waitForRecoveryEnd(120_000);
  t.deepEqual(await restored.query('SELECT count(*)::int AS n, max(n) AS top FROM on_fast'), [{ n: 6000, top: 6000 }]);
  t.deepEqual(await restored.query('SELECT count(*)::int AS n, max(n) AS top FROM on_default'), [{ n: 3500, top: 3500 }]);
  t.deepEqual(await restored.query("SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'fast'"), [{ location: moved }]);
  t.is(await readlink(path.join(dest, 'pg_tblspc', oid)), moved);
  t.true((await readdir(moved)).some((name) => name.startsWith('PG_15_')));
  // The source's tablespace was left alone.
  t.deepEqual(await source.query('SELECT count(*)::int AS n FROM on_fast'), [{ n: 6000 }]);
});
