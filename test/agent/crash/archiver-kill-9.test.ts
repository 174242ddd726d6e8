/**
 * kill -9 of the background archiver of asynchronous archiving at random
 * moments while PostgreSQL writes WAL and archives through
 * archive_command = 'gcwal wal-push %p' (GCWAL_ARCHIVE_ASYNC=on): every call
 * whose archiver is gone pushes its segment itself or starts a new archiver,
 * and whatever PostgreSQL was told is archived must be in the repository,
 * whole and verified. The delays come from a seeded source (GCWAL_CRASH_SEED
 * replays a run).
 */

import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ARCHIVER_COMMAND, ARCHIVER_DIR, ARCHIVER_PID } from '../../../agent/wal/archiver-control.ts';
import { runsCommand } from '../../../agent/wal/pid-file.ts';
import { openStorage } from '../../../core/storage/open.ts';
import { type Cluster, startCluster } from '../../../local/testkit/cluster.ts';
import { type InstalledAgent, installAgent } from '../../../local/testkit/install.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { checkRepository, crashKills, crashSeed, seededRandom } from './kill.ts';

let agent: InstalledAgent;
let work: TempDir;
let cluster: Cluster;
let repoDir: string;
let repo: string;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('archiver-kill', { owner: 'postgres' });
  repoDir = path.join(work.path, 'repo');
  repo = `file://${repoDir}`;
  cluster = await startCluster({ walSegSizeMB: 1, serverEnv: { GCWAL_REPO: repo, GCWAL_ARCHIVE_ASYNC: 'on' } });
  await repoCreate(repo, cluster);
  await cluster.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
  await cluster.query('SELECT pg_reload_conf()');
});

test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
});

const walDir = () => path.join(cluster.pgdata, 'pg_wal');

/** The live archiver's pid, waiting up to `ms` for one (a call starts the next). */
async function livePid(ms: number): Promise<number | undefined> {
  const deadline = Date.now() + ms;
  do {
    const text = await readFile(path.join(walDir(), ARCHIVER_DIR, ARCHIVER_PID), 'utf8').catch(() => '');
    const pid = Number.parseInt(text, 10);
    if (runsCommand(pid, ARCHIVER_COMMAND)) return pid;
    await sleep(10);
  } while (Date.now() < deadline);
  return undefined;
}

test('the archiver killed at random moments of a drain loses nothing PostgreSQL was told is archived', async (t) => {
  const seed = crashSeed();
  t.log(`GCWAL_CRASH_SEED=${seed}`);
  const random = seededRandom(seed);
  const wanted = crashKills() * 2;
  let kills = 0;
  for (let i = 0; kills < wanted && i < wanted * 3; i++) {
    // A little WAL each round, so the archiver always has segments in flight when it dies.
    await cluster.query(`CREATE TABLE IF NOT EXISTS churn_${i % 5} AS SELECT generate_series(1, 2000) AS n`);
    await cluster.query(`INSERT INTO churn_${i % 5} SELECT generate_series(1, 4000)`);
    await cluster.switchWal();
    const pid = await livePid(3000);
    if (pid === undefined) continue;
    await sleep(Math.floor(random() * 150));
    try {
      process.kill(pid, 'SIGKILL');
      kills++;
    } catch {
      // it exited on its own meanwhile
    }
  }
  t.log(`${kills} kills`);
  t.true(kills >= wanted, `only ${kills} kills`);

  await cluster.query('CREATE TABLE IF NOT EXISTS churn_end AS SELECT 1');
  const last = await cluster.switchWal();
  await cluster.waitForArchived(last, 120_000);

  const archived = new Set((await readdir(path.join(repoDir, 'wal'))).map((key) => key.slice(0, 24)));
  const done = (await readdir(path.join(walDir(), 'archive_status'))).filter((e) => /^[0-9A-F]{24}\.done$/.test(e)).map((e) => e.slice(0, 24));
  t.true(done.length > 0);
  t.deepEqual(
    done.filter((name) => !archived.has(name)),
    [],
    'every segment acknowledged is in the repository',
  );
  const [stats] = await cluster.query<{ archived_count: string; last_archived_wal: string }>('SELECT archived_count, last_archived_wal FROM pg_stat_archiver');
  t.true(archived.has(stats!.last_archived_wal), `${stats!.last_archived_wal} is in the repository`);
  t.true(archived.size >= Number(stats!.archived_count), `${archived.size} segments in the repository, ${stats!.archived_count} acknowledged`);
  await t.notThrowsAsync(checkRepository(await openStorage(repo)));

  // The segments still in pg_wal fetch back byte-identical.
  const fetchedDir = path.join(work.path, 'fetched');
  await mkdir(fetchedDir, { recursive: true });
  for (const name of done.filter((n) => n <= last).slice(-5)) {
    const r = await runGcwal(agent.command, ['wal-fetch', name, path.join(fetchedDir, name)], { env: { GCWAL_REPO: repo } });
    t.is(r.code, 0, r.stderr);
    t.true((await readFile(path.join(fetchedDir, name))).equals(await readFile(path.join(walDir(), name))), `${name} differs`);
  }
});
