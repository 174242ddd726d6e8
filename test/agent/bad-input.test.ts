/**
 * Bad input with real WAL from real PostgreSQL clusters: every case exits
 * with its documented code, says what to do on one line, and leaves nothing
 * half-written in the repository or on disk.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { repoCreate } from '../../local/testkit/repo.ts';

let agent: InstalledAgent;
let work: TempDir;
let clusterA: Cluster;
let clusterB: Cluster;
let segA: string; // a real segment of cluster A, copied out of pg_wal by its archive_command
let segB: string; // same for cluster B (another system identifier)

async function realSegment(cluster: Cluster, copies: string): Promise<string> {
  await cluster.query('CREATE TABLE IF NOT EXISTS filler AS SELECT generate_series(1, 1000) AS n');
  const name = await cluster.switchWal();
  await cluster.waitForArchived(name);
  return path.join(copies, name);
}

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('bad-input', { owner: 'postgres' });
  const copiesA = path.join(work.path, 'copies-a');
  const copiesB = path.join(work.path, 'copies-b');
  await mkdir(copiesA);
  await mkdir(copiesB);
  const { chown } = await import('node:fs/promises');
  const { postgresUser, runningAsRoot } = await import('../../local/testkit/users.ts');
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(copiesA, pg.uid, pg.gid);
    await chown(copiesB, pg.uid, pg.gid);
  }
  [clusterA, clusterB] = await Promise.all([
    startCluster({ walSegSizeMB: 1, archiveCommand: `cp %p ${copiesA}/%f` }),
    startCluster({ walSegSizeMB: 1, archiveCommand: `cp %p ${copiesB}/%f` }),
  ]);
  segA = await realSegment(clusterA, copiesA);
  segB = await realSegment(clusterB, copiesB);
});

test.after.always(async () => {
  await clusterA?.destroy();
  await clusterB?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
});

let repoCounter = 0;
/** A new repository of cluster A, made as gcwal repo-create does. */
async function freshRepo(): Promise<{ url: string; dir: string }> {
  const dir = path.join(work.path, `repo-${++repoCounter}`);
  await repoCreate(`file://${dir}`, clusterA);
  return { url: `file://${dir}`, dir };
}

function gcwal(args: string[], repo: string, cwd?: string) {
  return runGcwal(agent.command, args, { asUser: 'postgres', env: { GCWAL_REPO: repo }, cwd });
}

/** Every file under dir except gcwal's private area; what a user would see. */
async function repoFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
    .filter((p) => !p.startsWith('.gcwal'))
    .sort();
}

test('pushing the same segment twice succeeds both times and stores it once', async (t) => {
  const repo = await freshRepo();
  const first = await gcwal(['wal-push', segA], repo.url);
  t.is(first.code, 0, first.stderr);
  const again = await gcwal(['wal-push', segA], repo.url);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /already archived with identical content/);
  t.deepEqual(await repoFiles(repo.dir), ['gcwal.json', `wal/${path.basename(segA)}`]);
});

test('WAL from another cluster is refused with exit 4 and not stored', async (t) => {
  const repo = await freshRepo();
  t.is((await gcwal(['wal-push', segA], repo.url)).code, 0);
  const r = await gcwal(['wal-push', segB], repo.url);
  t.is(r.code, 4);
  t.regex(
    r.stderr,
    /^gcwal: error: repository file:\/\/.* belongs to cluster \d+, not to this cluster \d+ \(point GCWAL_REPO at this cluster's own repository\)\n$/,
  );
  t.deepEqual(await repoFiles(repo.dir), ['gcwal.json', `wal/${path.basename(segA)}`]);
});

test('different content under an archived name is refused with exit 5 and the original kept', async (t) => {
  const repo = await freshRepo();
  t.is((await gcwal(['wal-push', segA], repo.url)).code, 0);
  const altered = path.join(work.path, 'altered', path.basename(segA));
  await mkdir(path.dirname(altered), { recursive: true });
  const body = await readFile(segA);
  body[body.length - 100] ^= 0xff; // past the page header: still a valid-looking segment
  await writeFile(altered, body);
  const { chmod } = await import('node:fs/promises');
  await chmod(path.dirname(altered), 0o755);
  await chmod(altered, 0o644);
  const r = await gcwal(['wal-push', altered], repo.url);
  t.is(r.code, 5, r.stderr);
  t.regex(r.stderr, /is already archived with different content/);
  const back = path.join(work.path, 'back-conflict');
  await mkdir(back, { recursive: true });
  await chmod(back, 0o777);
  const f = await gcwal(['wal-fetch', path.basename(segA), path.join(back, 'seg')], repo.url);
  t.is(f.code, 0, f.stderr);
  t.deepEqual(await readFile(path.join(back, 'seg')), await readFile(segA));
});

test('a segment renamed to another segment name is refused with exit 3', async (t) => {
  const repo = await freshRepo();
  const wrong = path.join(work.path, 'renamed', '0000000100000000000000F0');
  await mkdir(path.dirname(wrong), { recursive: true });
  await copyFile(segA, wrong);
  const { chmod } = await import('node:fs/promises');
  await chmod(path.dirname(wrong), 0o755);
  await chmod(wrong, 0o644);
  const r = await gcwal(['wal-push', wrong], repo.url);
  t.is(r.code, 3);
  t.regex(r.stderr, /holds WAL from 0\/[0-9A-F]+, but its name places it at 0\/F000000/);
  t.deepEqual(await repoFiles(repo.dir), ['gcwal.json']);
});

for (const [where, setup, expected] of [
  ['outside a data directory', async (_d: string) => {}, 6],
  ['during archive recovery', async (d: string) => writeFile(path.join(d, 'PG_VERSION'), '15\n'), 126],
  [
    'on a standby',
    async (d: string) => {
      await writeFile(path.join(d, 'PG_VERSION'), '15\n');
      await writeFile(path.join(d, 'standby.signal'), '');
    },
    6,
  ],
] as const) {
  test(`a corrupted object fails wal-fetch loudly ${where} (exit ${expected}) and writes nothing`, async (t) => {
    const repo = await freshRepo();
    t.is((await gcwal(['wal-push', segA], repo.url)).code, 0);
    const name = path.basename(segA);
    const stored = path.join(repo.dir, 'wal', name);
    const bytes = await readFile(stored);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await writeFile(stored, bytes);

    const dataDir = `${repo.dir}-data`;
    await mkdir(path.join(dataDir, 'pg_wal'), { recursive: true });
    await setup(dataDir);
    const { execFile } = await import('node:child_process');
    await new Promise((res) => execFile('chmod', ['-R', 'a+rwx', dataDir], res));
    const r = await runGcwal(agent.command, ['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], {
      asUser: 'postgres',
      env: { GCWAL_REPO: repo.url, GCWAL_RETRIES: '1' },
      cwd: dataDir,
    });
    t.is(r.code, expected, r.stderr);
    t.regex(r.stderr, new RegExp(`error: wal/${name}: .*(crc32c?|adler32|checksum)`));
    t.notRegex(r.stderr, /not in the archive/);
    t.deepEqual(await readdir(path.join(dataDir, 'pg_wal')), [], 'no file or temp file left behind');
  });
}

test('backup-fetch into a non-empty directory is refused with exit 10 before writing', async (t) => {
  const repo = await freshRepo();
  const dest = path.join(work.path, 'not-empty');
  await mkdir(dest);
  await writeFile(path.join(dest, 'keep.txt'), 'precious');
  const { chmod } = await import('node:fs/promises');
  await chmod(dest, 0o777);
  const r = await gcwal(['backup-fetch', dest, 'LATEST'], repo.url);
  t.is(r.code, 10);
  t.regex(r.stderr, /is not empty \(restore into a new or empty directory\)/);
  t.deepEqual(await readdir(dest), ['keep.txt']);
});

test('backup-fetch of an unknown backup name exits 1 and suggests backup-list', async (t) => {
  const repo = await freshRepo();
  t.is((await gcwal(['wal-push', segA], repo.url)).code, 0);
  const dest = path.join(work.path, 'unknown-backup');
  const r = await gcwal(['backup-fetch', dest, 'base_000000010000000000000099'], repo.url);
  t.is(r.code, 1);
  t.regex(r.stderr, /base_000000010000000000000099/);
  t.regex(r.stderr, /backup-list/);
  t.false(existsSync(path.join(dest, 'PG_VERSION')));
});

test('backup-push against the wrong data directory is refused', async (t) => {
  const repo = await freshRepo();
  const r = await runGcwal(agent.command, ['backup-push', clusterB.pgdata], { asUser: 'postgres', env: { ...clusterA.env, GCWAL_REPO: repo.url } });
  t.not(r.code, 0);
  t.regex(r.stderr, /data director/);
  t.deepEqual(
    (await repoFiles(repo.dir)).filter((f) => f.startsWith('backups/') && f.endsWith('backup.json')),
    [],
  );
});
