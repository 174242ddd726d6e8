/**
 * Objects above one upload chunk (GCWAL_UPLOAD_CHUNK_SIZE 256 KiB here, so
 * every segment and every backup part is one) go up in resumable sessions
 * whose last chunk carries the CRC32C, against an endpoint as slow to
 * answer as Cloud Storage (the emulator's latency), under injected 503s,
 * connection resets in the middle of a chunk, bytes damaged in transit and
 * answers lost after the upload was carried out. Nothing damaged is ever
 * acknowledged: every object the agent reports stored holds its bytes, a
 * backup whose uploads cannot get through records no backup.json, and every
 * restore is byte-identical (each segment to the one PostgreSQL handed over,
 * each restored file to the manifest's size and CRC32C of what the backup
 * read). Real PostgreSQL archives and is backed up with
 * the installed CLI.
 */
import test from 'ava';
import { chmod, chown, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FaultKind, FaultPlan } from '../../local/gcs/faults.ts';
import { crc32c, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../local/testkit/users.ts';

const PREFIX = 'resumable';
/** Every answer this late: the driver then sends full chunks, as against Cloud Storage. */
const DISTANT_MS = 15;

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
let cluster: Cluster;
let copies: string;
/** what gcwal needs: the stack's settings, small chunks and patient retries */
let env: Record<string, string>;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('faults-resumable', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: PREFIX });
  env = { ...stack.env, GCWAL_UPLOAD_CHUNK_SIZE: '256KiB', GCWAL_PART_SIZE: '4MiB', GCWAL_RETRIES: '8', GCWAL_RETRY_MAX_DELAY: '1' };
  copies = path.join(work.path, 'copies');
  await mkdir(copies);
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(copies, pg.uid, pg.gid);
  }
  cluster = await startCluster({ walSegSizeMB: 1, archiveCommand: `cp %p ${copies}/%f && ${agent.command} wal-push %p`, serverEnv: env });
  await runRepoCreate(agent.command, cluster, env);
  await cluster.query('CREATE TABLE t (id serial PRIMARY KEY, pad text)');
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await cluster?.destroy();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

/** Faults of `kinds` into a fraction `rate` of the requests, every answer DISTANT_MS late. */
function faults(rate: number, kinds: FaultPlan['kinds'], seed: number, match?: FaultPlan['match']): void {
  stack.emulator.setFaults({ rate, kinds, seed, latencyMs: DISTANT_MS, match });
}

/** Object names under the repository's `sub` folder. */
async function names(sub: string): Promise<string[]> {
  const out: string[] = [];
  let pageToken = '';
  do {
    const res = await fetch(
      `${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=${encodeURIComponent(`${PREFIX}/${sub}`)}${pageToken ? `&pageToken=${pageToken}` : ''}`,
      { headers: { Authorization: `Bearer ${stack.adminToken()}` } },
    );
    const body = (await res.json()) as { items?: { name: string }[]; nextPageToken?: string };
    out.push(...(body.items ?? []).map((i) => i.name.slice(PREFIX.length + 1)));
    pageToken = body.nextPageToken ?? '';
  } while (pageToken);
  return out;
}

/** An object of the repository, as an admin reads it. */
async function objectText(key: string): Promise<string> {
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o/${encodeURIComponent(`${PREFIX}/${key}`)}?alt=media`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
  });
  if (!res.ok) throw new Error(`${key}: ${res.status}`);
  return res.text();
}

/** About one 1 MiB segment of WAL that lzo halves at best (hex digits), so it goes up in several chunks. */
async function writeSegment(): Promise<string> {
  await cluster.query('INSERT INTO t (pad) SELECT md5(random()::text) || md5(random()::text) FROM generate_series(1, 9000)');
  return cluster.switchWal();
}

/** What the table holds, in one digest. */
async function digest(c: Cluster): Promise<string> {
  const [row] = await c.query<{ d: string }>("SELECT md5(string_agg(id::text || pad, ',' ORDER BY id)) AS d FROM t");
  return row.d;
}

test.serial(
  'the archiver under 503s, resets in mid-chunk, damaged bytes and lost answers stores every segment once and whole, and each restores byte-identical',
  async (t) => {
    const before = stack.emulator.stats().faultKinds;
    // At random, and each kind at least once: every third request to a resumable session is given a kind not injected yet
    // (one that does not apply, as a body fault on a status query, is not counted and comes again).
    const kinds: FaultKind[] = ['503', 'reset-upload', 'corrupt-upload', 'lose-answer'];
    let sessionRequests = 0;
    faults(0.2, kinds, 20261207, (method, target) => {
      if (method !== 'PUT' || !target.includes('upload_id=') || ++sessionRequests % 3 !== 0) return true;
      const injected = stack.emulator.stats().faultKinds;
      return kinds.find((kind) => (injected[kind] ?? 0) === (before[kind] ?? 0)) ?? true;
    });
    let last = '';
    for (let i = 0; i < 16; i++) last = await writeSegment();
    await cluster.waitForArchived(last, 300_000);
    stack.emulator.setFaults(undefined);
    const injected = stack.emulator.stats().faultKinds;
    for (const kind of kinds) t.true((injected[kind] ?? 0) > (before[kind] ?? 0), `no ${kind} fault was injected: ${JSON.stringify(injected)}`);
    t.log('faults while archiving', injected);

    const segments = (await readdir(copies)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    t.true(segments.length >= 16, `${segments.length} segments archived`);
    t.deepEqual(
      (await names('wal/'))
        .map((n) => n.slice('wal/'.length))
        .filter((n) => /^[0-9A-F]{24}$/.test(n))
        .sort(),
      segments,
      'every segment is in the bucket, once',
    );

    // Each one restores as it was handed over: wal-fetch checks the stored
    // bytes against the server's CRC32C and the decoded ones against the
    // segment's, and the result is compared with the copy.
    faults(0.2, ['503', 'reset-download'], 7);
    const restoreDir = path.join(work.path, 'fetched');
    await mkdir(restoreDir);
    await chmod(restoreDir, 0o777);
    for (const name of segments) {
      const r = await runGcwal(agent.command, ['wal-fetch', name, path.join(restoreDir, name)], { env });
      t.is(r.code, 0, `${name}: ${r.stderr}`);
      t.true((await readFile(path.join(restoreDir, name))).equals(await readFile(path.join(copies, name))), `${name} differs`);
    }
    stack.emulator.setFaults(undefined);
  },
);

test.serial('a backup whose every upload is damaged in transit fails and records nothing: no backup.json, no part', async (t) => {
  const before = await names('backups/');
  // Every upload, the archiver's too (it catches up afterwards).
  faults(1, ['corrupt-upload'], 1);
  const pushed = await runGcwal(agent.command, ['backup-push', cluster.pgdata], { asUser: 'postgres', env: { ...cluster.env, ...env, GCWAL_RETRIES: '1' } });
  stack.emulator.setFaults(undefined);
  t.not(pushed.code, 0, pushed.stdout);
  t.regex(pushed.stderr, /checksum mismatch in transit/);
  t.deepEqual(await names('backups/'), before, 'nothing of the failed backup is stored');
  t.true((stack.emulator.stats().faultKinds['corrupt-upload'] ?? 0) > 0);
});

test.serial('backup-push with parts above one chunk under the same faults stores a backup that restores byte-identical', async (t) => {
  for (let i = 0; i < 4; i++) await writeSegment();
  // A damaged chunk costs the whole part (the server refuses it at the last
  // chunk and the part starts over): two of them, from the third request to a
  // part's session on, the rest at random. Forced until injected, since a
  // request without a body (a status query after a reset) cannot carry one.
  const corruptBefore = stack.emulator.stats().faultKinds['corrupt-upload'] ?? 0;
  let partChunks = 0;
  faults(0.1, ['503', 'reset-upload', 'lose-answer'], 424242, (method, target) => {
    if (method !== 'PUT' || !target.includes('name=resumable%2Fbackups%2F')) return true;
    partChunks++;
    const corrupted = (stack.emulator.stats().faultKinds['corrupt-upload'] ?? 0) - corruptBefore;
    return partChunks >= 3 && corrupted < 2 ? 'corrupt-upload' : true;
  });
  const pushed = await runGcwal(agent.command, ['backup-push', cluster.pgdata], { asUser: 'postgres', env: { ...cluster.env, ...env } });
  t.is(pushed.code, 0, pushed.stderr);
  t.true((stack.emulator.stats().faultKinds['corrupt-upload'] ?? 0) - corruptBefore >= 1, 'a part chunk was damaged');
  t.regex(pushed.stderr, /checksum mismatch in transit/, 'and its part sent again');
  t.log('faults by the end of the backup', stack.emulator.stats().faultKinds);
  const backup = pushed.stdout.trim().split('\n').pop()!;
  await cluster.query('INSERT INTO t (pad) VALUES ($1)', ['after the backup']);
  const want = await digest(cluster);
  await cluster.waitForArchived(await cluster.switchWal(), 300_000);
  stack.emulator.setFaults(undefined);

  const meta = JSON.parse(await objectText(`backups/${backup}/backup.json`)) as { parts: { key: string; storedSize: number }[] };
  t.true(meta.parts.length >= 3, `${meta.parts.length} parts`);
  t.true(
    meta.parts.some((p) => p.storedSize > 256 * 1024),
    'parts larger than one chunk',
  );

  // Restore through 503s, replay the archive, compare. (Not through resets
  // of downloads: backup-fetch does not resume a manifest cut off midway.)
  faults(0.15, ['503'], 99);
  const dest = path.join(work.path, 'restored');
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest, backup, '--recovery', '--gcwal-command', agent.command], { asUser: 'postgres', env });
  t.is(fetched.code, 0, fetched.stderr);
  stack.emulator.setFaults(undefined);

  // Byte for byte, before PostgreSQL changes anything: every file of the
  // manifest has the size and CRC32C of the bytes the backup read, and
  // nothing else is there but what a restore adds. postgresql.auto.conf is
  // its bytes followed by the recovery settings backup-fetch appends.
  const manifest = (await objectText(`backups/${backup}/manifest.jsonl`))
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { path: string; type: string; size: number; crc32c?: string });
  const files = manifest.filter((e) => e.type === 'file');
  t.true(files.length > 500, `${files.length} files in the manifest`);
  for (const entry of files) {
    const bytes = await readFile(path.join(dest, entry.path));
    const original = entry.path === 'postgresql.auto.conf' ? bytes.subarray(0, entry.size) : bytes;
    if (original !== bytes)
      t.regex(
        bytes.subarray(entry.size).toString(),
        new RegExp(`^\\n?# recovery settings written by gcwal backup-fetch ${backup};.*\\nrestore_command = `),
        'then the recovery settings',
      );
    t.is(original.length, entry.size, entry.path);
    t.is(crc32cBase64(crc32c(original)), entry.crc32c ?? 'no crc32c', `${entry.path} restored byte-identical`);
  }
  const inManifest = new Set(files.map((e) => e.path));
  const restoredFiles = (await readdir(dest, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dest, path.join(e.parentPath, e.name)));
  t.deepEqual(restoredFiles.filter((p) => !inManifest.has(p)).sort(), ['backup_label', 'recovery.signal'], 'only what a restore adds');

  faults(0.15, ['503'], 99);
  const restored = await startClusterFromDirectory(dest, { serverEnv: env });
  cleanups.push(() => restored.destroy());
  await restored.waitForRecoveryEnd(300_000);
  stack.emulator.setFaults(undefined);
  t.is(await digest(restored), want, "the restored table is the source's");
});
