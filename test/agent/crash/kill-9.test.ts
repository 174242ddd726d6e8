/**
 * kill -9 at random moments: wal-push, backup-push and backup-fetch of the
 * installed CLI are SIGKILLed, on file:// and on gs:// through the local
 * stack, then the same command runs again. A third of the kills come from
 * outside (SIGKILL to the whole process group) after a delay drawn over the
 * command's own duration, so they land mid-write and mid-request; the rest
 * just before one of the command's steps (crash-step.mjs: a file system
 * change or fsync, an HTTP request), each step once before any twice, so
 * that windows of a few milliseconds (data linked but its sidecar not yet
 * renamed; restore finished but not yet reported) are hit as often as any.
 *
 * After every kill a reader sees nothing partial (every object listed,
 * stat'ed and read whole and verified, every backup backup-list shows
 * complete, wal-fetch a whole file or not-found; a restore directory either
 * unfinished without a control file or the whole backup), and every rerun
 * succeeds with the same result as an uninterrupted run: the same WAL
 * bytes, a backup that validates and, at the end, restores and recovers
 * with the rows, a restore identical file for file.
 *
 * On file:// a reader finishes what a killed writer left (a pending
 * sidecar renamed into place): every other pair of rounds the rerun comes
 * first, so the command's own recovery is exercised too, not only the
 * reader's.
 *
 * Replay a failure with GCWAL_CRASH_SEED=<the seed logged>; GCWAL_CRASH_KILLS
 * sets the kills per command and repository kind (default 15, so 30 per
 * command).
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLogger } from '../../../agent/log.ts';
import { INCOMPLETE_MARKER } from '../../../agent/restore/destination.ts';
import { fetchWalFile } from '../../../agent/wal/fetch.ts';
import { crc32c } from '../../../core/checksum/crc32c.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { openStorage } from '../../../core/storage/open.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';
import { execOk } from '../../../local/testkit/exec.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { runningAsRoot } from '../../../local/testkit/users.ts';
import { BACKUP_NAME, type FixtureEntry, writeFixtureBackup } from '../restore/fixture.ts';
import { checkRepository, CRASH_STEP_MODULE, crashKills, crashSeed, runMaybeKilled, seededRandom, type KillOutcome } from './kill.ts';
import { snapshotTree, type TreeSnapshot } from './tree.ts';

type Kind = 'file' | 'gs';
const kinds: Kind[] = ['file', 'gs'];

const seed = crashSeed();
const kills = crashKills();

let agent: InstalledAgent;
let work: TempDir;
/** crash-step.mjs where every user can read it */
let stepModule: string;
let cluster: Cluster;
let stack: LocalStack;
let identity: { systemIdentifier: string; walSegmentSize: number };
/** a full 1 MiB segment of the cluster, copied out by archive_command */
let segment: string;
const log = createLogger(new PassThrough(), 'text');
/** digest of the table `kept` */
let kept: string;

async function keptDigest(c: Cluster): Promise<string> {
  const [row] = await c.query<{ d: string }>("SELECT md5(string_agg(i::text || h, ',' ORDER BY i)) AS d FROM kept");
  return row.d;
}

/** Per kind, the repository the cluster archives into and backup-push writes to (it waits for its WAL there). */
const backupRepos = new Map<Kind, Repository>();

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('crash', { owner: 'postgres' });
  // Where the postgres user can read it (the checkout may be under /root).
  stepModule = path.join(work.path, 'crash-step.mjs');
  await copyFile(CRASH_STEP_MODULE, stepModule);
  await chmod(stepModule, 0o644);
  stack = await startLocalStack({ prefix: 'crash' });
  adoptStackEnv(stack);
  const copies = path.join(work.path, 'copies');
  const { GCWAL_REPO: _unused, ...storageEnv } = stack.env;
  cluster = await startCluster({ walSegSizeMB: 1, archiveCommand: `mkdir -p ${copies} && cp %p ${copies}/%f`, serverEnv: storageEnv });
  // A few MB of data, so a backup has something to stream besides the catalogs.
  await cluster.query('CREATE TABLE filler AS SELECT i, md5(i::text) AS h FROM generate_series(1, 60000) AS i');
  const name = await cluster.switchWal();
  await cluster.waitForArchived(name);
  segment = path.join(copies, name);
  const [row] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  identity = { systemIdentifier: row.id, walSegmentSize: 1024 * 1024 };
  await cluster.query('DROP TABLE filler');
  // Rows no test changes: a restore of the last backup must hold them.
  await cluster.query('CREATE TABLE kept AS SELECT i, md5(i::text) AS h FROM generate_series(1, 1000) AS i');
  kept = await keptDigest(cluster);
  // From now on the cluster archives into one repository of each kind: backup-push waits for its WAL there.
  const pushes: string[] = [];
  for (const kind of kinds) {
    const repo = await freshRepository(kind, 'backups');
    if (kind === 'file' && runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', fileURLToPath(repo.url)]);
    // The file:// rounds connect over the socket, the gs:// ones over TCP, so each can tell its own sessions apart.
    if (kind === 'gs') repo.env.PGHOST = '127.0.0.1';
    backupRepos.set(kind, repo);
    pushes.push(`env GCWAL_REPO=${repo.url} ${agent.command} wal-push %p`);
  }
  await cluster.query(`ALTER SYSTEM SET archive_command = '${pushes.join(' && ')}'`);
  await cluster.query('SELECT pg_reload_conf()');
  await cluster.waitForArchived(await cluster.switchWal());
});

test.after.always(async () => {
  await cluster?.destroy();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

interface Repository {
  url: string;
  storage: Storage;
  env: Record<string, string>;
  /** keys a check has read and verified already (objects never change) */
  verified: Set<string>;
}

/** A new, created repository of `kind` (its own directory or prefix). */
async function freshRepository(kind: Kind, id: string): Promise<Repository> {
  let url: string;
  if (kind === 'file') {
    const dir = path.join(work.path, `repo-${id}`);
    await mkdir(dir, { mode: 0o700 });
    url = pathToFileURL(dir).href;
  } else {
    url = `gs://${stack.bucket}/crash/${id}`;
  }
  const storage = await openStorage(url, { gcs: { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } } });
  await createRepositoryIdentity(storage, identity);
  return { url, storage, env: { ...(kind === 'gs' ? stack.env : {}), ...cluster.env, GCWAL_REPO: url }, verified: new Set() };
}

/** A run to completion that also counts its steps (crash-step.mjs): what the kills are drawn over. */
interface FirstRun {
  code: number | null;
  stderr: string;
  elapsedMs: number;
  steps: number;
}

async function firstRun(label: string, args: string[], env: Record<string, string>, asPostgres = false): Promise<FirstRun> {
  const countInto = path.join(work.path, `steps-${label.replace(/\W+/g, '-')}`);
  const run = await runMaybeKilled(agent.command, args, { env, asPostgres, steps: { module: stepModule, countInto } });
  return { ...run, steps: Number(await readFile(countInto, 'utf8')) };
}

/**
 * Kill `args` until `kills` runs were killed before they finished: every
 * third round after a delay drawn over the command's duration (that of
 * `first`, then following the reruns), the others just before one of the
 * steps `first` took, each step once before any twice (the last and the
 * first before the others). After each, `afterKill` checks what a reader
 * sees, the same command runs again and must succeed, and `afterRerun`
 * checks the result. `round` makes each round's state. With
 * `readerRepairs` (file://: a reader finishes a killed writer's rename),
 * afterKill is skipped every other pair of rounds so that the rerun meets
 * what the kill left.
 */
async function killRounds<S>(
  t: ExecutionContext,
  label: string,
  first: FirstRun,
  round: (i: number) => Promise<{ state: S; args: string[]; env: Record<string, string>; asPostgres?: boolean }>,
  afterKill: (state: S, outcome: KillOutcome) => Promise<void>,
  /** `checked`: afterKill ran before the rerun */
  afterRerun: (state: S, checked: boolean) => Promise<void>,
  readerRepairs = false,
): Promise<void> {
  const killed = { time: 0, step: 0 };
  let rounds = 0;
  // One random source per test, so the file's tests may run side by side and a seed still replays each.
  const random = seededRandom(seed ^ crc32c(Buffer.from(label)));
  let typical = first.elapsedMs;
  // Every step once before any twice: the last and the first (the edges), then the others in an order of the seed's.
  const order = [
    ...new Set([
      first.steps,
      1,
      ...shuffled(
        Array.from({ length: first.steps }, (_, i) => i + 1),
        random,
      ),
    ]),
  ];
  let stepRounds = 0;
  for (; killed.time + killed.step < kills && rounds < kills * 3; rounds++) {
    const { state, args, env, asPostgres } = await round(rounds);
    const byStep = rounds % 3 !== 0;
    const moment = byStep ? order[stepRounds++ % order.length] : Math.floor(random() * typical);
    const where = `${label} round ${rounds}, killed ${byStep ? `before step ${moment} of ${first.steps}` : `after ${moment} ms`} (GCWAL_CRASH_SEED=${seed})`;
    const cut = await runMaybeKilled(agent.command, args, {
      env,
      asPostgres,
      ...(byStep ? { steps: { module: stepModule, at: moment } } : { killAfterMs: moment }),
    });
    if (cut.killed) killed[byStep ? 'step' : 'time']++;
    else t.is(cut.code, 0, `${where}: finished by itself but failed: ${cut.stderr}`);
    const checked = !readerRepairs || Math.floor(rounds / 2) % 2 === 0;
    if (checked) await afterKill(state, cut).catch((err: Error) => t.fail(`${where}: after the kill: ${err.message}`));
    const again = await runMaybeKilled(agent.command, args, { env, asPostgres });
    t.is(again.code, 0, `${where}: the rerun failed: ${again.stderr}`);
    await afterRerun(state, checked).catch((err: Error) => t.fail(`${where}: after the rerun: ${err.message}`));
    // The delays follow the command's duration as it runs now (a first run warms caches).
    typical = Math.round((typical + again.elapsedMs) / 2);
  }
  t.log(
    `${label}: ${killed.time + killed.step} kills in ${rounds} rounds (${killed.time} at a moment drawn over ${first.elapsedMs} ms first, ${typical} ms last; ${killed.step} before a step of ${first.steps}), seed ${seed}`,
  );
  t.true(killed.time + killed.step >= kills, `only ${killed.time + killed.step} of ${rounds} runs were killed before they finished`);
}

function shuffled<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** What wal-fetch gives for the segment: its whole verified bytes, or not-found. */
async function fetchSegment(storage: Storage, id: string): Promise<Buffer | 'not-found'> {
  const dest = path.join(work.path, `fetched-${id}`);
  const outcome = await fetchWalFile(storage, path.basename(segment), dest, { retries: 0, log });
  if (outcome === 'not-found') return outcome;
  const bytes = await readFile(dest);
  await rm(dest);
  return bytes;
}

for (const kind of kinds) {
  test(`wal-push killed at random moments on ${kind}:// leaves nothing partial and its rerun archives the whole segment`, async (t) => {
    const original = await readFile(segment);
    const reference = await freshRepository(kind, 'wal-reference');
    const first = await firstRun(`wal-push-${kind}`, ['wal-push', segment], reference.env);
    t.is(first.code, 0, first.stderr);
    await killRounds(
      t,
      `wal-push ${kind}`,
      first,
      async (i) => {
        const repo = await freshRepository(kind, `wal-${i}`);
        return { state: repo, args: ['wal-push', segment], env: repo.env };
      },
      async (repo) => {
        await checkRepository(repo.storage, repo.verified);
        const got = await fetchSegment(repo.storage, `${kind}-after-kill`);
        if (got !== 'not-found' && !got.equals(original)) throw new Error('wal-fetch returned other bytes than the segment');
      },
      async (repo) => {
        await checkRepository(repo.storage, repo.verified);
        const got = await fetchSegment(repo.storage, `${kind}-after-rerun`);
        if (got === 'not-found' || !got.equals(original)) throw new Error('wal-fetch did not return the segment');
      },
      kind === 'file',
    );
  });
}

/**
 * Poll until no session of a gcwal backup-push of this kind's rounds is
 * left on the cluster: its non-exclusive backup ended with it.
 */
async function noBackupSessionLeft(kind: Kind): Promise<void> {
  const overTcp = kind === 'gs' ? 'NOT NULL' : 'NULL';
  for (let i = 0; i < 300; i++) {
    const [{ n }] = await cluster.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'gcwal backup-push' AND client_addr IS ${overTcp}`,
    );
    if (Number(n) === 0) return;
    await sleep(50);
  }
  throw new Error('a killed backup-push still has a session (and a backup in progress) on the server');
}

for (const kind of kinds) {
  test(`backup-push killed at random moments on ${kind}:// leaves no backup in progress and no partial backup visible, and its rerun makes a complete one`, async (t) => {
    const repo = backupRepos.get(kind)!;
    const args = ['backup-push', cluster.pgdata];
    const first = await firstRun(`backup-push-${kind}`, args, repo.env, true);
    t.is(first.code, 0, first.stderr);
    t.is((await checkRepository(repo.storage, repo.verified)).backups, 1);
    await killRounds(
      t,
      `backup-push ${kind}`,
      first,
      async () => ({ state: repo, args, env: repo.env, asPostgres: true }),
      async () => {
        await noBackupSessionLeft(kind);
        await checkRepository(repo.storage, repo.verified);
      },
      async (_repo, checked) => {
        // Unchecked, the killed run's backup may have been complete before the kill (then it is counted now).
        const { backups } = await checkRepository(repo.storage, repo.verified);
        if (backups < 1 || backups > (checked ? 1 : 2)) throw new Error(`the rerun made ${backups} complete backups, not one`);
      },
      kind === 'file',
    );
    // The last rerun's backup restores, recovers and holds the rows.
    const dest = path.join(work.path, `backup-push-${kind}-restored`);
    const fetched = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-immediate', '--target-action', 'promote'], {
      asUser: 'postgres',
      env: repo.env,
    });
    t.is(fetched.code, 0, fetched.stderr);
    // restore_command needs the repository's settings only (the stack's for gs://), not the source's libpq ones.
    const serverEnv = Object.fromEntries(Object.entries(repo.env).filter(([k]) => !k.startsWith('PG')));
    // It does not archive: its archive_command is the source's, which pushes to every kind's repository, and a
    // timeline 2 history from this promotion would send the other kind's restore to a timeline forked before its backup.
    const restored = await startClusterFromDirectory(dest, { serverEnv, settings: { archive_mode: false } });
    try {
      await restored.waitForRecoveryEnd();
      t.is(await keptDigest(restored), kept);
    } finally {
      await restored.destroy();
    }
  });
}

/**
 * A small backup (a few dozen files, one of 3 MiB, in three parts) for the
 * backup-fetch rounds: a restore of the cluster's own ~1000 files takes
 * seconds, and where the kill lands does not depend on the file count.
 */
async function smallBackupRepository(kind: Kind): Promise<Repository> {
  const id = 'restore-source';
  const url = kind === 'file' ? pathToFileURL(path.join(work.path, `repo-${id}`)).href : `gs://${stack.bucket}/crash/${id}`;
  if (kind === 'file') await mkdir(fileURLToPath(url), { mode: 0o700 });
  const storage = await openStorage(url, { gcs: { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } } });
  const entries: FixtureEntry[] = [
    { path: 'PG_VERSION', content: '15\n' },
    { path: 'base', type: 'directory' },
    { path: 'base/1', type: 'directory' },
    { path: 'global', type: 'directory' },
    { path: 'pg_tblspc', type: 'directory' },
    ...Array.from({ length: 40 }, (_, i) => ({ path: `base/1/${16384 + i}`, content: randomBytes(8192 * (1 + (i % 4))), part: i % 3 })),
    { path: 'base/1/big', content: randomBytes(3 * 1024 * 1024), part: 1 },
    { path: 'global/pg_control', content: Buffer.alloc(8192, 7), part: 2 },
  ];
  await writeFixtureBackup(storage, { entries, parts: 3, codec: 'lzo' });
  return { url, storage, env: { ...(kind === 'gs' ? stack.env : {}), GCWAL_REPO: url }, verified: new Set() };
}

for (const kind of kinds) {
  test(`backup-fetch killed at random moments on ${kind}:// leaves a directory PostgreSQL cannot start, and its rerun into it restores the backup file for file`, async (t) => {
    const repo = await smallBackupRepository(kind);
    const referenceDir = path.join(work.path, `restore-${kind}-reference`);
    const first = await firstRun(`backup-fetch-${kind}`, ['backup-fetch', referenceDir, BACKUP_NAME], repo.env);
    t.is(first.code, 0, first.stderr);
    const expected = await snapshotTree(referenceDir);
    await killRounds<string>(
      t,
      `backup-fetch ${kind}`,
      first,
      async (i) => {
        const dest = path.join(work.path, `restore-${kind}-${i}`);
        return { state: dest, args: ['backup-fetch', dest, BACKUP_NAME], env: repo.env };
      },
      async (dest) => {
        if (!existsSync(dest)) return;
        if (existsSync(path.join(dest, INCOMPLETE_MARKER))) {
          // Unfinished: PostgreSQL refuses it (no control file), unless the control file, put in place last of all, is there: then all of it is.
          if (!existsSync(path.join(dest, 'global/pg_control'))) return;
          const tree = await snapshotTree(dest);
          tree.delete(INCOMPLETE_MARKER);
          assertSameTree(tree, expected);
          return;
        }
        // Killed before the marker was in place: nothing else may be there yet.
        if ((await readdir(dest)).every((name) => name === `${INCOMPLETE_MARKER}.gcwal-tmp`)) return;
        // No marker: the restore had finished, so it must be the whole backup.
        assertSameTree(await snapshotTree(dest), expected);
      },
      async (dest) => {
        if (existsSync(path.join(dest, INCOMPLETE_MARKER))) throw new Error('the marker is still there');
        assertSameTree(await snapshotTree(dest), expected);
        await rm(dest, { recursive: true, force: true });
      },
    );
  });
}

function assertSameTree(actual: TreeSnapshot, expected: TreeSnapshot): void {
  for (const [p, what] of expected) if (actual.get(p) !== what) throw new Error(`${p}: ${actual.get(p) ?? 'missing'}, expected ${what}`);
  for (const p of actual.keys()) if (!expected.has(p)) throw new Error(`${p} should not be there`);
}
