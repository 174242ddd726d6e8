/**
 * Pushing ahead with a real PostgreSQL: a cluster whose archiving is paused
 * (archive_mode on, no archive_command) piles up ready segments; wal-push is
 * then run as archive_command runs it, as postgres in the data directory.
 */
import test from 'ava';
import { chmod, copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AHEAD_LIMIT, pushAhead, readySegments } from '../../../agent/wal/ahead.ts';
import { MARKER_DIR } from '../../../agent/wal/marker.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';

let agent: InstalledAgent;
let work: TempDir;
let cluster: Cluster;
let repoDir: string;
let repo: string;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('wal-ahead', { owner: 'postgres' });
  repoDir = path.join(work.path, 'repo');
  repo = `file://${repoDir}`;
  cluster = await startCluster({ walSegSizeMB: 1, serverEnv: { GCWAL_REPO: repo, GCWAL_VERBOSE: 'true' } });
  await repoCreate(repo, cluster);
  // Enough for one wal-push's segment, AHEAD_LIMIT more, and one beyond them.
  for (let i = 0; i < AHEAD_LIMIT + 5; i++) {
    await cluster.query(`CREATE TABLE filler_${i} AS SELECT generate_series(1, 3000) AS n`);
    await cluster.switchWal();
  }
});

test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
});

const walDir = () => path.join(cluster.pgdata, 'pg_wal');
const gcwal = (args: string[], env: Record<string, string> = {}) =>
  runGcwal(agent.command, args, { asUser: 'postgres', env: { GCWAL_REPO: repo, GCWAL_VERBOSE: 'true', ...env }, cwd: cluster.pgdata });
const markers = async () => (await readdir(path.join(walDir(), MARKER_DIR)).catch(() => [] as string[])).sort();
const archived = async () => (await readdir(path.join(repoDir, 'wal')).catch(() => [] as string[])).sort();

test.serial('a segment that cannot be pushed ahead is reported, left unmarked, and does not stop the others', async (t) => {
  // A copy of pg_wal with three ready segments, the middle one failing to push.
  const { next } = await readySegments(walDir(), 'none', 3);
  const copy = path.join(work.path, 'copy', 'pg_wal');
  await mkdir(path.join(copy, 'archive_status'), { recursive: true });
  for (const name of next) {
    await copyFile(path.join(walDir(), name), path.join(copy, name));
    await writeFile(path.join(copy, 'archive_status', `${name}.ready`), '');
  }
  const failed: string[] = [];
  const marked = await pushAhead(copy, 'none', {
    repo,
    push: async (file) => {
      const name = path.basename(file);
      if (name === next[1]) throw new Error('no space left');
      return { status: 'archived', key: `wal/${name}`, rawSize: 1, rawCrc32c: 'AAAAAA==', storedSize: 1 };
    },
    onError: (name) => failed.push(name),
  });
  t.deepEqual(marked, [next[0], next[2]]);
  t.deepEqual(failed, [next[1]]);
  t.deepEqual((await readdir(path.join(copy, MARKER_DIR))).sort(), [next[0], next[2]]);
});

test.serial('the ready segments are listed oldest first, without the one being pushed', async (t) => {
  const { next, ready } = await readySegments(walDir(), 'none', 100);
  t.true(next.length >= AHEAD_LIMIT + 2, next.join(' '));
  t.deepEqual(next, [...next].sort());
  t.true(next.every((name) => ready.has(name)));
  const [first, second, third] = next;
  t.deepEqual((await readySegments(walDir(), first!, 2)).next, [second, third]);
  t.deepEqual(await readySegments(path.join(work.path, 'not-pg_wal'), first!, 2), { next: [], ready: new Set() });
});

test.serial('wal-push archives the next ready segments ahead and marks them; their own calls then return without the repository', async (t) => {
  const { next } = await readySegments(walDir(), 'none', 100);
  const [first, ...rest] = next;
  const r = await gcwal(['wal-push', `pg_wal/${first}`]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`archived ${AHEAD_LIMIT} more ready segments ahead`));
  const ahead = rest.slice(0, AHEAD_LIMIT);
  t.deepEqual(await markers(), ahead);
  t.deepEqual(await archived(), [first, ...ahead].sort());

  // With the repository unreadable, only a marked segment can succeed: its call never opens the repository.
  await chmod(repoDir, 0o000);
  try {
    const marked = await gcwal(['wal-push', `pg_wal/${ahead[0]}`]);
    t.is(marked.code, 0, marked.stderr);
    t.regex(marked.stderr, /was archived ahead by an earlier wal-push/);
    const unmarked = await gcwal(['wal-push', `pg_wal/${rest[AHEAD_LIMIT]}`]);
    t.is(unmarked.code, 7, unmarked.stderr);
  } finally {
    await chmod(repoDir, 0o755);
  }
  t.deepEqual(await markers(), ahead.slice(1), 'the marker was consumed');
});

test.serial('a marker for another repository is not trusted: the segment is pushed there', async (t) => {
  const other = `file://${path.join(work.path, 'other-repo')}`;
  await repoCreate(other, cluster);
  const [marked] = await markers();
  const r = await gcwal(['wal-push', `pg_wal/${marked}`], { GCWAL_REPO: other });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`archived ${marked}`));
  t.notRegex(r.stderr, /archived ahead by an earlier/);
  t.false((await markers()).includes(marked!), 'the stale marker was removed');
});

test.serial('PostgreSQL archives a backlog through wal-push with every marker consumed and nothing failed', async (t) => {
  await cluster.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
  await cluster.query('SELECT pg_reload_conf()');
  const last = (await readySegments(walDir(), 'none', 100)).next.at(-1)!;
  await cluster.waitForArchived(last, 60_000);
  const [stats] = await cluster.query<{ archived_count: string; failed_count: string }>('SELECT archived_count, failed_count FROM pg_stat_archiver');
  t.is(Number(stats!.failed_count), 0);
  // every segment the cluster wrote is in the repository, and no marker is left behind
  for (let i = 0; i < 50 && (await markers()).length > 0; i++) await sleep(100);
  t.deepEqual(await markers(), []);
  const log = await readFile(cluster.logFile, 'utf8');
  t.regex(log, /more ready segments? ahead/);
  t.regex(log, /was archived ahead by an earlier wal-push/);
  const all = (await readySegments(walDir(), 'none', 100)).next;
  t.deepEqual(all, [], 'nothing left ready');
  t.true((await archived()).includes(last));
});

test.serial('pushing ahead without a pg_wal beside the file does nothing', async (t) => {
  const marked = await pushAhead(path.join(work.path, 'elsewhere'), 'x', { repo, push: () => Promise.reject(new Error('must not push')) });
  t.deepEqual(marked, []);
});
