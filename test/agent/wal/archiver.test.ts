/**
 * Asynchronous archiving (GCWAL_ARCHIVE_ASYNC=on) with a real PostgreSQL:
 * a backlog of ready segments piles up while archiving is paused, then
 * archive_command = 'gcwal wal-push %p' drains it through the background
 * archiver; the repository's file system (a small tmpfs of its own) is
 * then filled for a while.
 */

import { chmod, copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { readySegments } from '../../../agent/wal/ahead.ts';
import { ARCHIVER_DIR, LOG_FILE } from '../../../agent/wal/archiver-control.ts';
import type { ArchiverReport } from '../../../agent/wal/archiver-report.ts';
import { openStorage } from '../../../core/storage/open.ts';
import { type Cluster, startCluster } from '../../../local/testkit/cluster.ts';
import { type InstalledAgent, installAgent } from '../../../local/testkit/install.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { checkRepository } from '../crash/kill.ts';

const BACKLOG = 12;
/** the repository's own file system, in MiB: the backlog's segments and the tests' fit with room to spare */
const REPO_FS_MIB = 64;

let agent: InstalledAgent;
let work: TempDir;
let cluster: Cluster;
let repoDir: string;
let mounted = false;
let repo: string;
/** the backlog's segments as PostgreSQL wrote them */
let copies: string;
let backlog: string[];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('wal-archiver', { owner: 'postgres' });
  repoDir = path.join(work.path, 'repo');
  repo = `file://${repoDir}`;
  // A file system of its own, which a test fills: a full disk under the repository.
  await mkdir(repoDir);
  await execOk('mount', ['-t', 'tmpfs', '-o', `size=${REPO_FS_MIB}m,mode=0755`, 'gcwal-archiver-test', repoDir]);
  mounted = true;
  copies = path.join(work.path, 'copies');
  await mkdir(copies);
  cluster = await startCluster({ walSegSizeMB: 1, serverEnv: { GCWAL_REPO: repo, GCWAL_ARCHIVE_ASYNC: 'on' } });
  await repoCreate(repo, cluster);
  for (let i = 0; i < BACKLOG; i++) {
    await cluster.query(`CREATE TABLE filler_${i} AS SELECT generate_series(1, 3000) AS n`);
    await cluster.switchWal();
  }
  backlog = (await readySegments(walDir(), 'none', 1000)).next;
  for (const name of backlog) await copyFile(path.join(walDir(), name), path.join(copies, name));
});

test.after.always(async () => {
  await cluster?.destroy();
  if (mounted) await execOk('umount', [repoDir]).catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

const walDir = () => path.join(cluster.pgdata, 'pg_wal');
const gcwal = (args: string[], env: Record<string, string> = {}, cwd = work.path) =>
  runGcwal(agent.command, args, { asUser: 'postgres', env: { GCWAL_REPO: repo, ...env }, cwd });
const archiverLog = async () =>
  (await readFile(path.join(walDir(), ARCHIVER_DIR, LOG_FILE), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { severity: string; message: string; segment?: string });
const stats = async () =>
  (
    await cluster.query<{ archived_count: string; failed_count: string; last_archived_wal: string | null }>(
      'SELECT archived_count, failed_count, last_archived_wal FROM pg_stat_archiver',
    )
  )[0]!;
const report = async () => JSON.parse((await gcwal(['archiver-status', cluster.pgdata, '--json'])).stdout) as ArchiverReport;

test.serial('PostgreSQL drains a backlog through the background archiver, and every segment fetched back is byte-identical', async (t) => {
  t.true(backlog.length >= BACKLOG, backlog.join(' '));
  await cluster.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
  await cluster.query('SELECT pg_reload_conf()');
  await cluster.waitForArchived(backlog.at(-1)!, 120_000);
  t.is(Number((await stats()).failed_count), 0);

  // The archiver did the pushing: PostgreSQL's calls waited for its markers.
  const archivedByArchiver = new Set((await archiverLog()).filter((l) => l.message.startsWith('archived ')).map((l) => l.segment));
  t.true(backlog.filter((name) => archivedByArchiver.has(name)).length >= backlog.length / 2, [...archivedByArchiver].join(' '));

  const fetched = path.join(work.path, 'fetched');
  await mkdir(fetched, { recursive: true });
  await chmod(fetched, 0o777);
  for (const name of backlog) {
    const r = await gcwal(['wal-fetch', name, path.join(fetched, name)]);
    t.is(r.code, 0, r.stderr);
    t.true((await readFile(path.join(fetched, name))).equals(await readFile(path.join(copies, name))), `${name} differs`);
  }
});

test.serial('archiver-status shows the running archiver, an empty queue and no error', async (t) => {
  const r = await report();
  t.is(typeof r.pid, 'number');
  t.is(r.queue, 0);
  t.true(r.archived >= backlog.length / 2, JSON.stringify(r));
  t.is(r.lastError, null);
  const text = await gcwal(['archiver-status', cluster.pgdata]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /archiver: running \(pid \d+\)/);
  t.regex(text.stdout, /queue: 0 segments/);
});

test.serial(
  "while the repository's disk is full no segment is acknowledged, pg_stat_archiver counts the failures, and archiving resumes once there is room",
  async (t) => {
    const before = await stats();
    // The rest of the repository's file system taken by a filler file (a tmpfs of its own, mounted in test.before).
    const filler = path.join(repoDir, 'filler');
    await execOk('sh', ['-c', `dd if=/dev/zero of=${filler} bs=64k 2>/dev/null; true`]);
    let during: Awaited<ReturnType<typeof stats>>;
    let failing: ArchiverReport;
    try {
      for (let i = 0; i < 3; i++) {
        await cluster.query(`CREATE TABLE full_disk_${i} AS SELECT generate_series(1, 3000) AS n`);
        await cluster.switchWal();
      }
      const deadline = Date.now() + 60_000;
      while (Number((during = await stats()).failed_count) <= Number(before.failed_count) && Date.now() < deadline) await sleep(200);
      failing = await report();
    } finally {
      await rm(filler, { force: true });
    }
    t.true(Number(during!.failed_count) > Number(before.failed_count), 'PostgreSQL saw the failures');
    t.is(during!.archived_count, before.archived_count, 'nothing was acknowledged while the disk was full');
    t.truthy(failing!.lastError, JSON.stringify(failing!));
    t.regex(failing!.lastError?.message ?? '', /ENOSPC|no space|full/i);
    t.true(failing!.queue > 0);

    // Resumes: a new segment wakes PostgreSQL's archiver, which retries the old ones first.
    await cluster.query('CREATE TABLE after_full_disk AS SELECT generate_series(1, 3000) AS n');
    const last = await cluster.switchWal();
    await cluster.waitForArchived(last, 120_000);
    const archived = new Set((await readdir(path.join(repoDir, 'wal'))).map((key) => key.slice(0, 24)));
    const done = (await readdir(path.join(walDir(), 'archive_status')))
      .filter((e) => e.endsWith('.done'))
      .map((e) => e.slice(0, 24))
      .filter((n) => /^[0-9A-F]{24}$/.test(n));
    t.deepEqual(
      done.filter((name) => !archived.has(name)),
      [],
      'every segment acknowledged is in the repository',
    );
    await t.notThrowsAsync(checkRepository(await openStorage(repo)));
    t.true((await archiverLog()).some((l) => l.severity === 'WARNING' && /failed/.test(l.message)));
  },
);
