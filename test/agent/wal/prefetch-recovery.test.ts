/**
 * WAL prefetch with real PostgreSQL (issue 13 part 1): restore_command is the
 * installed `gcwal wal-fetch %f %p`, with prefetch on as by default, and each
 * test checks what PostgreSQL replayed (the rows) as well as the spool.
 *
 * - A recovery to a target time across a promotion (timeline 1, then 2), on
 *   15 and on the newest version: exactly the rows committed before the
 *   target, and segments were served from the spool.
 * - A prefetcher killed in the middle of a file, and spooled segments
 *   damaged or truncated after they were verified: nothing of it reaches
 *   PostgreSQL, which still replays exactly the rows.
 *
 * recovery_min_apply_delay holds PostgreSQL at the first commit after the
 * backup while the prefetcher fills the spool, so a test can act on a spool
 * that PostgreSQL has not read yet; setting it back to 0 lets replay go on.
 */
import test, { type ExecutionContext } from 'ava';
import { createReadStream, existsSync } from 'node:fs';
import { appendFile, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { SPOOL_DIR } from '../../../agent/wal/spool-entry.ts';
import { readSpoolEntry } from '../../../agent/wal/spool.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import type { PgMajor } from '../../../local/testkit/pgbin.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('prefetch-recovery', { owner: 'postgres' });
});
test.after.always(async () => {
  await work?.cleanup();
  await agent?.cleanup();
});

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query('INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g', [batch, rows]);
}

async function now(cluster: Cluster): Promise<string> {
  const [{ t }] = await cluster.query<{ t: string }>("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t");
  return t;
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused');
    if (row.paused) return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

/** The prefetchers' last words in the server log (their stderr is PostgreSQL's log file). */
async function prefetchStops(cluster: Cluster): Promise<{ reason: string; spooled: number; served: number }[]> {
  const log = await readFile(cluster.logFile, 'utf8');
  return [...log.matchAll(/gcwal: prefetch stopped: (.+?) spooled=(\d+) served=(\d+)/g)].map((m) => ({
    reason: m[1],
    spooled: Number(m[2]),
    served: Number(m[3]),
  }));
}

/** Poll until the prefetcher logged that it stopped because recovery ended, and the spool is gone. */
async function waitForPrefetchEnd(t: ExecutionContext, cluster: Cluster): Promise<{ spooled: number; served: number }> {
  const spool = path.join(cluster.pgdata, 'pg_wal', SPOOL_DIR);
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) {
    const ended = (await prefetchStops(cluster)).filter((s) => s.reason === 'recovery ended');
    if (ended.length > 0 && !existsSync(spool)) return { spooled: ended.reduce((n, s) => n + s.spooled, 0), served: ended.reduce((n, s) => n + s.served, 0) };
  }
  t.fail(`the prefetcher did not stop and remove ${spool} after recovery ended:\n${await cluster.logTail()}`);
  return { spooled: 0, served: 0 };
}

async function backupPush(t: ExecutionContext, source: Cluster, env: Record<string, string>): Promise<string> {
  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
  t.is(pushed.code, 0, pushed.stderr);
  return pushed.stdout.trim().split('\n').pop()!;
}

async function backupFetch(t: ExecutionContext, dest: string, backup: string, target: string, env: Record<string, string>): Promise<void> {
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest, backup, '--target-time', target, '--gcwal-command', agent.command], {
    asUser: 'postgres',
    env,
  });
  t.is(fetched.code, 0, fetched.stderr);
}

for (const major of [15, 18] as const satisfies readonly PgMajor[]) {
  test.serial(
    `with prefetch, recovery to a target time across a promotion to timeline 2 brings back exactly the rows committed before it, on PostgreSQL ${major}`,
    async (t) => {
      const env = { GCWAL_REPO: `file://${path.join(work.path, `repo-tl-${major}`)}` };
      const cleanups: (() => Promise<unknown>)[] = [];
      t.teardown(async () => {
        for (const c of cleanups.reverse()) await c().catch(() => {});
      });

      // Timeline 1: A before the backup, B1 before the fork, X after it (on timeline 1 only).
      const source = await startCluster({ pgMajor: major, walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
      cleanups.push(() => source.destroy());
      await runRepoCreate(agent.command, source, env);
      await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
      await insertBatch(source, 'A', 10_000);
      const backup = await backupPush(t, source, env);
      for (let i = 0; i < 4; i++) {
        await insertBatch(source, 'B1', 2500);
        await source.switchWal();
      }
      const fork = await now(source);
      await sleep(1100);
      for (let i = 0; i < 4; i++) {
        await insertBatch(source, 'X', 2500);
        await source.switchWal();
      }
      await source.waitForArchived(await source.switchWal(), 60_000);
      await source.stop();

      // Timeline 2: restored to the fork and promoted; B before the target, C after it.
      const dest1 = path.join(work.path, `tl-first-${major}`);
      await backupFetch(t, dest1, backup, fork, env);
      const first = await startClusterFromDirectory(dest1, { pgMajor: major, serverEnv: env });
      cleanups.push(() => first.destroy());
      await waitForPausedAtTarget(first);
      t.deepEqual(await counts(first), { A: 10_000, B1: 10_000 });
      await first.promote();
      await first.waitForRecoveryEnd();
      for (let i = 0; i < 4; i++) {
        await insertBatch(first, 'B', 2500);
        await first.switchWal();
      }
      const target = await now(first);
      await sleep(1100);
      await insertBatch(first, 'C', 2500);
      const last = await first.switchWal();
      t.regex(last, /^00000002/);
      await first.waitForArchived(last, 60_000);
      await first.stop();

      // The same backup to the target on timeline 2: timeline 1's segments up
      // to the fork, then timeline 2's, while the prefetcher also fetches
      // timeline 1's segments past the fork (X), which must never be replayed.
      const dest2 = path.join(work.path, `tl-second-${major}`);
      await backupFetch(t, dest2, backup, target, env);
      const second = await startClusterFromDirectory(dest2, { pgMajor: major, serverEnv: env });
      cleanups.push(() => second.destroy());
      await waitForPausedAtTarget(second);
      t.deepEqual(await counts(second), { A: 10_000, B1: 10_000, B: 10_000 }, 'exactly the rows committed before the target, on timeline 2');
      await second.promote();
      await second.waitForRecoveryEnd();
      const { served } = await waitForPrefetchEnd(t, second);
      t.true(served >= 4, `only ${served} segments were served from the spool`);
    },
  );
}

/** A source with a backup and eight segments of rows after it, all archived, and the target after them. */
interface Source {
  env: Record<string, string>;
  backup: string;
  target: string;
  rows: Record<string, number>;
}

let attackSource: Promise<Source> | undefined;

/** One source for the tests that attack the spool, made on first use. */
function sourceForAttacks(t: ExecutionContext): Promise<Source> {
  attackSource ??= (async () => {
    const env = { GCWAL_REPO: `file://${path.join(work.path, 'repo-attack')}` };
    const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
    try {
      await runRepoCreate(agent.command, source, env);
      await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
      await insertBatch(source, 'A', 2000);
      const backup = await backupPush(t, source, env);
      for (let i = 0; i < 8; i++) {
        await insertBatch(source, 'B', 500);
        await source.switchWal();
      }
      const target = await now(source);
      await sleep(1100);
      await insertBatch(source, 'C', 500);
      await source.waitForArchived(await source.switchWal(), 60_000);
      return { env, backup, target, rows: { A: 2000, B: 4000 } };
    } finally {
      await source.destroy();
    }
  })();
  return attackSource;
}

/** Restore the source's backup to its target and start it held at the first commit after the backup. */
async function startHeld(t: ExecutionContext, name: string, beforeStart?: (dest: string) => void): Promise<{ cluster: Cluster; dest: string; spool: string }> {
  const src = await sourceForAttacks(t);
  const dest = path.join(work.path, name);
  await backupFetch(t, dest, src.backup, src.target, src.env);
  beforeStart?.(dest);
  const cluster = await startClusterFromDirectory(dest, { serverEnv: src.env, settings: { recovery_min_apply_delay: '1h' } });
  t.teardown(() => cluster.destroy());
  return { cluster, dest, spool: path.join(dest, 'pg_wal', SPOOL_DIR) };
}

/** Let replay go on: the delay back to 0, read at the next reload. */
async function release(cluster: Cluster): Promise<void> {
  await appendFile(path.join(cluster.pgdata, 'postgresql.auto.conf'), 'recovery_min_apply_delay = 0\n');
  await cluster.query('SELECT pg_reload_conf()');
}

const SEGMENT = /^[0-9A-F]{24}$/;
/** A temporary file of a segment being spooled (spool.ts): `.<segment>.<pid>.<token>.tmp`. */
const SEGMENT_TEMP = /^\.[0-9A-F]{24}\.\d+\.[0-9a-f]+\.tmp$/;

async function spoolNames(spool: string): Promise<string[]> {
  return readdir(spool).catch(() => [] as string[]);
}

/** Whether `name` in the spool has a record and the content the record vouches for. */
async function intact(walDir: string, name: string): Promise<boolean> {
  const entry = await readSpoolEntry(walDir, name);
  if (!entry) return false;
  let crc = 0;
  let size = 0;
  for await (const chunk of createReadStream(path.join(walDir, SPOOL_DIR, name))) {
    crc = crc32c(chunk as Buffer, crc);
    size += (chunk as Buffer).length;
  }
  return size === entry.rawSize && crc32cBase64(crc) === entry.rawCrc32c;
}

test.serial('a prefetcher killed in the middle of a file leaves only a temporary name; it is replaced and recovery brings back exactly the rows', async (t) => {
  const src = await sourceForAttacks(t);
  // Watch the spool from before the start; freeze the prefetcher, and kill it
  // only when it was caught with a segment half written (else let it go on).
  let caught: { pid: number; temps: string[] } | undefined;
  let watching = true;
  let watcher: Promise<void> = Promise.resolve();
  const { cluster, spool } = await startHeld(t, 'killed', (dest) => {
    const dir = path.join(dest, 'pg_wal', SPOOL_DIR);
    watcher = (async () => {
      while (watching && !caught) {
        const names = await spoolNames(dir);
        if (names.some((n) => SEGMENT_TEMP.test(n))) {
          const pid = Number.parseInt(await readFile(path.join(dir, 'fetcher.pid'), 'utf8').catch(() => ''), 10);
          if (Number.isInteger(pid) && pid > 0) {
            process.kill(pid, 'SIGSTOP');
            const temps = (await spoolNames(dir)).filter((n) => SEGMENT_TEMP.test(n));
            if (temps.length > 0) {
              process.kill(pid, 'SIGKILL');
              caught = { pid, temps };
              break;
            }
            process.kill(pid, 'SIGCONT');
          }
        }
        await sleep(1);
      }
    })();
  });
  for (const deadline = Date.now() + 30_000; !caught && Date.now() < deadline; ) await sleep(50);
  watching = false;
  await watcher;
  if (!caught) return t.fail(`the prefetcher was never caught writing a segment:\n${await cluster.logTail()}`);

  // What the killed fetcher left: temporary names, and segments only whole and recorded.
  const walDir = path.join(cluster.pgdata, 'pg_wal');
  const left = await spoolNames(spool);
  // The temporary names stay until a replacement prefetcher (started by PostgreSQL's next call) removes them.
  const holder = Number.parseInt(await readFile(path.join(spool, 'fetcher.pid'), 'utf8').catch(() => ''), 10);
  t.true(left.some((n) => SEGMENT_TEMP.test(n)) || (Number.isInteger(holder) && holder !== caught.pid), `${left.join(' ')} (fetcher.pid ${holder})`);
  for (const name of left.filter((n) => SEGMENT.test(n))) t.true(await intact(walDir, name), `${name} is in the spool but not whole and recorded`);

  await release(cluster);
  await waitForPausedAtTarget(cluster);
  t.deepEqual(await counts(cluster), src.rows);
  // A new prefetcher took over from the dead one and removed its leftovers.
  const pid = Number.parseInt(await readFile(path.join(spool, 'fetcher.pid'), 'utf8').catch(() => ''), 10);
  t.not(pid, caught.pid);
  t.false(
    (await spoolNames(spool)).some((n) => SEGMENT_TEMP.test(n)),
    "the killed fetcher's temporary files are gone",
  );
  await cluster.promote();
  await cluster.waitForRecoveryEnd();
  await waitForPrefetchEnd(t, cluster);
});

test.serial(
  'a spooled segment damaged or truncated after it was verified is not served: wal-fetch fetches it again and recovery brings back exactly the rows',
  async (t) => {
    const src = await sourceForAttacks(t);
    const { cluster, spool } = await startHeld(t, 'damaged');
    const walDir = path.join(cluster.pgdata, 'pg_wal');
    // Wait until the prefetcher has spooled what the archive has ahead (it stops at the end).
    let recorded: string[] = [];
    for (let stable = 0, deadline = Date.now() + 60_000; stable < 5 && Date.now() < deadline; await sleep(200)) {
      const names = await spoolNames(spool);
      const now = names.filter((n) => SEGMENT.test(n) && names.includes(`${n}.entry`)).sort();
      stable = now.length >= 3 && now.join() === recorded.join() && !names.some((n) => SEGMENT_TEMP.test(n)) ? stable + 1 : 0;
      recorded = now;
    }
    t.true(recorded.length >= 3, `spooled: ${recorded.join(' ')}\n${await cluster.logTail()}`);

    // One damaged in place (a byte flipped), one cut short.
    const [damaged, cut] = recorded;
    const file = path.join(spool, damaged);
    const bytes = await readFile(file);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(file, bytes);
    await truncate(path.join(spool, cut), 8192);
    t.false(await intact(walDir, damaged));
    t.false(await intact(walDir, cut));

    await release(cluster);
    await waitForPausedAtTarget(cluster);
    t.deepEqual(await counts(cluster), src.rows, 'exactly the rows committed before the target');
    const log = await readFile(cluster.logFile, 'utf8');
    for (const name of [damaged, cut]) t.regex(log, new RegExp(`the prefetched ${name} was (changed|damaged) in the spool and is not used`));
    await cluster.promote();
    await cluster.waitForRecoveryEnd();
    const { served } = await waitForPrefetchEnd(t, cluster);
    t.true(served >= 1, 'the intact segments were served from the spool');
  },
);
