/**
 * `backup-fetch --delta` with real PostgreSQL 15 (issue 13 part 3): a data
 * directory left by a failed recovery of an older backup (its prefetch spool
 * still in pg_wal) is brought to a newer backup of the same cluster. Files
 * that match the manifest keep their inode and mtime, changed ones are
 * rewritten, extra ones removed, and the directory ends exactly as a
 * restore into an empty one (compared file by file); recovery to a target
 * time then brings back exactly the rows. A running server and another
 * cluster's directory are refused before anything is written.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32c } from '../../../core/checksum/crc32c.ts';
import { INCOMPLETE_MARKER } from '../../../agent/restore/destination.ts';
import { backupPartKey } from '../../../core/layout.ts';
import { SPOOL_DIR } from '../../../agent/wal/spool-entry.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;
let source: Cluster;
let env: Record<string, string>;
let older: string;
let newer: string;
let target: string;
const cleanups: (() => Promise<unknown>)[] = [];

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query('INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g', [batch, rows]);
}

async function backupPush(): Promise<string> {
  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
  if (pushed.code !== 0) throw new Error(pushed.stderr);
  return pushed.stdout.trim().split('\n').pop()!;
}

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('delta', { owner: 'postgres' });
  env = { GCWAL_REPO: `file://${path.join(work.path, 'repo')}` };
  source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  await runRepoCreate(agent.command, source, env);
  await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
  await insertBatch(source, 'A', 5000);
  older = await backupPush();
  // Between the backups: a few segments, for the older one's recovery to prefetch.
  for (let i = 0; i < 4; i++) {
    await insertBatch(source, 'A', 1000);
    await source.switchWal();
  }
  await source.query('CREATE TABLE other (n int)');
  newer = await backupPush();
  await insertBatch(source, 'B', 2000);
  [{ t: target }] = await source.query<{ t: string }>("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t");
  await sleep(1100);
  await insertBatch(source, 'C', 1000);
  await source.waitForArchived(await source.switchWal(), 60_000);
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await source?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
});

interface Found {
  type: 'file' | 'directory' | 'other';
  size: number;
  ino: bigint;
  mtimeNs: bigint;
  mode: number;
  crc?: number;
}

/** Every entry under `dir` (links not followed), by relative path. */
async function tree(dir: string, rel = '', out = new Map<string, Found>()): Promise<Map<string, Found>> {
  for (const name of await readdir(path.join(dir, rel))) {
    const relative = rel ? `${rel}/${name}` : name;
    const st = await lstat(path.join(dir, relative), { bigint: true });
    const base = { size: Number(st.size), ino: st.ino, mtimeNs: st.mtimeNs, mode: Number(st.mode & 0o7777n) };
    if (st.isDirectory()) {
      out.set(relative, { type: 'directory', ...base });
      await tree(dir, relative, out);
    } else if (st.isFile()) {
      out.set(relative, { type: 'file', ...base, crc: crc32c(await readFile(path.join(dir, relative))) });
    } else {
      out.set(relative, { type: 'other', ...base });
    }
  }
  return out;
}

/** What a restore must reproduce: type, mode and content, not identity. */
function contents(t: Map<string, Found>): Record<string, string> {
  return Object.fromEntries([...t].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, f]) => [p, `${f.type} ${f.mode.toString(8)} ${f.crc ?? ''}`]));
}

async function fetch(args: string[]) {
  return runGcwal(agent.command, ['backup-fetch', ...args, '--gcwal-command', agent.command], { asUser: 'postgres', env });
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused');
    if (row.paused) return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

/**
 * The older backup restored and recovering, held at its first commit while
 * the prefetcher fills the spool, then failed: the prefetcher killed, the
 * server stopped at once. What is left is a data directory with a spool.
 */
async function failedRecovery(t: ExecutionContext, dest: string): Promise<void> {
  const r = await fetch([dest, older, '--recovery']);
  t.is(r.code, 0, r.stderr);
  const cluster = await startClusterFromDirectory(dest, { serverEnv: env, settings: { recovery_min_apply_delay: '1h' } });
  cleanups.push(() => cluster.destroy());
  const spool = path.join(dest, 'pg_wal', SPOOL_DIR);
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
    if ((await readdir(spool).catch(() => [] as string[])).some((n) => n.endsWith('.entry'))) break;
  }
  const pid = Number.parseInt(await readFile(path.join(spool, 'fetcher.pid'), 'utf8'), 10);
  process.kill(pid, 'SIGKILL');
  await cluster.stop('immediate');
  const left = await readdir(spool).catch(() => [] as string[]);
  t.true(
    left.some((n) => n.endsWith('.entry')),
    `the failed recovery left no spooled segment (${left.join(' ')}):\n${await cluster.logTail()}`,
  );
}

test.serial(
  'a delta restore keeps unchanged files, rewrites changed ones, removes the rest, ends exactly as a full restore, and recovers to a target',
  async (t) => {
    const dest = path.join(work.path, 'standby');
    await failedRecovery(t, dest);

    // What else a stopped standby or failed primary may hold, and a file damaged in place (same size).
    await writeFile(path.join(dest, 'standby.signal'), '');
    await writeFile(path.join(dest, 'postmaster.pid'), '999999\n');
    await mkdir(path.join(dest, 'pg_replslot', 'slot1'), { recursive: true });
    await writeFile(path.join(dest, 'pg_replslot', 'slot1', 'state'), 'x');
    await writeFile(path.join(dest, 'base', '1', '999999'), 'not in the backup');
    await writeFile(path.join(dest, 'pg_wal', '000000010000000000000099'), 'old wal');
    const before = await tree(dest);
    // Under 64 KiB: no block checksums, so the file is rewritten whole (larger ones are patched, tested below).
    const damaged = [...before].find(
      ([p, f]) => f.type === 'file' && /^base\/1\/\d+$/.test(p) && p !== 'base/1/999999' && (f.crc ?? 0) !== 0 && f.size < 64 * 1024,
    )![0];
    const bytes = await readFile(path.join(dest, damaged));
    bytes[0] ^= 0xff;
    await writeFile(path.join(dest, damaged), bytes);
    await execOk('chown', ['-R', 'postgres:postgres', dest]);
    const beforeDamage = (await tree(dest)).get(damaged)!;

    const r = await fetch([dest, newer, '--delta', '--target-time', target]);
    t.is(r.code, 0, r.stderr);
    const after = await tree(dest);

    // Exactly what a restore into an empty directory gives.
    const full = path.join(work.path, 'full');
    const f = await fetch([full, newer, '--target-time', target]);
    t.is(f.code, 0, f.stderr);
    t.deepEqual(contents(after), contents(await tree(full)));

    for (const gone of [
      'standby.signal',
      'postmaster.pid',
      'pg_replslot/slot1',
      'base/1/999999',
      'pg_wal/000000010000000000000099',
      `pg_wal/${SPOOL_DIR}`,
      INCOMPLETE_MARKER,
    ])
      t.false(after.has(gone), `${gone} is still there`);
    // Unchanged files untouched: same inode, same mtime.
    let kept = 0;
    for (const [p, was] of before) {
      const now = after.get(p);
      if (was.type !== 'file' || !now || now.crc !== was.crc || p === damaged) continue;
      // Written by every restore: the control file last, the recovery settings, the label.
      if (['global/pg_control', 'postgresql.auto.conf', 'recovery.signal', 'backup_label'].includes(p)) continue;
      t.is(now.ino, was.ino, `${p} was rewritten although unchanged`);
      t.is(now.mtimeNs, was.mtimeNs, `${p} was touched although unchanged`);
      kept++;
    }
    t.true(kept >= 200, `only ${kept} files kept`);
    // The damaged file rewritten with the backup's content. (Not told by its
    // inode: the file system may give the new file the number the old one freed.)
    t.not(after.get(damaged)!.crc, beforeDamage.crc);
    t.is(after.get(damaged)!.crc, (await tree(full)).get(damaged)!.crc);

    const restored = await startClusterFromDirectory(dest, { serverEnv: env });
    cleanups.push(() => restored.destroy());
    await waitForPausedAtTarget(restored);
    t.deepEqual(await counts(restored), { A: 9000, B: 2000 }, 'exactly the rows committed before the target');
  },
);

test.serial("a delta restore refuses a running server, a live prefetcher and another cluster's data directory, writing nothing", async (t) => {
  const running = await fetch([source.pgdata, newer, '--delta', '--recovery']);
  t.is(running.code, 10, running.stderr);
  t.regex(running.stderr, /a server is running on/);
  t.false(existsSync(path.join(source.pgdata, INCOMPLETE_MARKER)));

  const other = await startCluster({});
  cleanups.push(() => other.destroy());
  await other.stop();
  const before = contents(await tree(other.pgdata));
  // A prefetcher of the directory's last recovery that still runs could write into the new spool.
  const fetcher = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'wal-prefetch'], { stdio: 'ignore' });
  t.teardown(() => fetcher.kill('SIGKILL'));
  const spool = path.join(other.pgdata, 'pg_wal', SPOOL_DIR);
  await mkdir(spool);
  await writeFile(path.join(spool, 'fetcher.pid'), `${fetcher.pid}\n`);
  const prefetching = await fetch([other.pgdata, newer, '--delta', '--recovery']);
  t.is(prefetching.code, 10, prefetching.stderr);
  t.regex(prefetching.stderr, /prefetcher .* still runs/);
  await rm(spool, { recursive: true });
  t.deepEqual(contents(await tree(other.pgdata)), before, 'nothing written');

  const mismatch = await fetch([other.pgdata, newer, '--delta', '--recovery']);
  t.is(mismatch.code, 4, mismatch.stderr);
  t.regex(mismatch.stderr, /belongs to cluster \d+, backup base_\w+ to cluster \d+/);
  t.deepEqual(contents(await tree(other.pgdata)), before, 'nothing written');
});

test.serial('a delta restore writes only the blocks of a large file that differ, in place, and the file ends byte-identical to the backup', async (t) => {
  // Two files of the data directory a backup takes as they are: one of
  // 128 blocks of 8 KiB, zeros but for block 5; one of 32 random blocks.
  const probe = randomBytes(8192);
  const sparse = Buffer.alloc(128 * 8192);
  probe.copy(sparse, 5 * 8192);
  const random = randomBytes(32 * 8192);
  await writeFile(path.join(source.pgdata, 'probe.sparse'), sparse, { mode: 0o600 });
  await writeFile(path.join(source.pgdata, 'probe.random'), random, { mode: 0o600 });
  await execOk('chown', ['postgres:postgres', path.join(source.pgdata, 'probe.sparse'), path.join(source.pgdata, 'probe.random')]);
  const probed = await backupPush();
  const dest = path.join(work.path, 'patched');
  const r = await fetch([dest, probed]);
  t.is(r.code, 0, r.stderr);
  const restored = contents(await tree(dest));

  // Locally: the first file rewritten sparse (holes read as the backup's
  // zeros) with block 9 different; the second cut to 100 KiB with its
  // first byte changed. A delta must write block 9 of the first, and block
  // 0 and everything from block 12 of the second, nothing else.
  const sparseFile = path.join(dest, 'probe.sparse');
  await rm(sparseFile);
  const fh = await open(sparseFile, 'w', 0o600);
  await fh.write(probe, 0, probe.length, 5 * 8192);
  await fh.write(randomBytes(8192), 0, 8192, 9 * 8192);
  await fh.truncate(sparse.length);
  await fh.close();
  const cut = Buffer.from(random.subarray(0, 100 * 1024));
  cut[0] ^= 0xff;
  await writeFile(path.join(dest, 'probe.random'), cut);
  await execOk('chown', ['-R', 'postgres:postgres', dest]);
  const sparseBefore = await stat(sparseFile, { bigint: true });
  const randomBefore = await stat(path.join(dest, 'probe.random'), { bigint: true });
  t.true(sparseBefore.blocks <= 64n, `the sparse probe holds ${sparseBefore.blocks} sectors`);

  const d = await fetch([dest, probed, '--delta']);
  t.is(d.code, 0, d.stderr);
  t.regex(d.stderr, /2 patched in place \(22 of their 160 blocks to write\)/);
  // The two probes are a small share of their part: only their ranges are read (agent/restore/ranges.ts).
  t.regex(d.stderr, /1 read only in the ranges of the files to write/);
  t.deepEqual(await readFile(sparseFile), sparse);
  t.deepEqual(await readFile(path.join(dest, 'probe.random')), random);
  const sparseAfter = await stat(sparseFile, { bigint: true });
  t.is(sparseAfter.ino, sparseBefore.ino, 'patched in place');
  t.is((await stat(path.join(dest, 'probe.random'), { bigint: true })).ino, randomBefore.ino, 'patched in place');
  // The unchanged blocks were not written: they are still holes.
  t.is(sparseAfter.blocks, sparseBefore.blocks, 'blocks that matched the backup were written');
  // And the whole directory is what the full restore gave.
  t.deepEqual(contents(await tree(dest)), restored);
  await rm(path.join(source.pgdata, 'probe.sparse'));
  await rm(path.join(source.pgdata, 'probe.random'));
  probedBackup = { name: probed, dest, restored };
});

/** The block-level test's backup and its restore, the latter now exactly that backup. */
let probedBackup: { name: string; dest: string; restored: Record<string, string> } | undefined;

test.serial(
  'a delta restore reads only the stored ranges of the files it writes: damage elsewhere in the part is never read, damage in a range is refused',
  async (t) => {
    if (!probedBackup) return t.fail('the block-level test did not leave its backup');
    const { name, dest, restored } = probedBackup;
    const repo = path.join(work.path, 'repo');
    const manifest = (await readFile(path.join(repo, 'backups', name, 'manifest.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path: string; part?: number; size: number; storedOffset?: number; storedEnd?: number });
    const probe = manifest.find((e) => e.path === 'probe.random')!;
    t.true(probe.storedOffset !== undefined && probe.storedEnd !== undefined, 'backup-push recorded where the file lies in its part');
    const partFile = path.join(repo, ...backupPartKey(name, probe.part!).split('/'));
    // A byte in the middle of the largest other file's range of the same part, away from the probe's.
    const other = manifest
      .filter((e) => e.part === probe.part && e.path !== 'probe.random' && e.storedOffset !== undefined)
      .filter((e) => e.storedEnd! + (1 << 20) < probe.storedOffset! || e.storedOffset! > probe.storedEnd! + (1 << 20))
      .sort((a, b) => b.size - a.size)[0];
    t.truthy(other, 'a file of the part far from the probe');
    const original = await readFile(partFile);
    const damaged = Buffer.from(original);
    damaged[Math.floor((other.storedOffset! + other.storedEnd!) / 2)] ^= 0xff;
    await writeFile(partFile, damaged);
    t.teardown(() => writeFile(partFile, original));

    // The damage is real: a full restore reads it and refuses the part.
    const full = await fetch([path.join(work.path, 'full-of-damaged'), name]);
    t.is(full.code, 6, full.stderr);

    const local = path.join(dest, 'probe.random');
    const changed = await readFile(local);
    changed[100] ^= 0xff;
    await writeFile(local, changed);
    const d = await fetch([dest, name, '--delta']);
    t.is(d.code, 0, d.stderr);
    t.deepEqual(contents(await tree(dest)), restored, 'the delta gives the backup, the damaged bytes never read');

    // Damage inside the probe's own range: its bytes fail their checksum, and the delta says which file.
    const inRange = Buffer.from(original);
    inRange[Math.floor((probe.storedOffset! + probe.storedEnd!) / 2)] ^= 0xff;
    await writeFile(partFile, inRange);
    await writeFile(local, changed);
    const refused = await fetch([dest, name, '--delta']);
    t.is(refused.code, 6, refused.stderr);
    t.regex(refused.stderr, /probe\.random/);
  },
);
