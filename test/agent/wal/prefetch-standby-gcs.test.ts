/**
 * WAL prefetch on a standby (standby.signal, restore_command only) that
 * keeps asking for the next segment while the primary archives, on gs://
 * through the local stack (issue 13 part 1). The standby follows the
 * primary with exactly its rows, nothing is spooled before its object
 * exists, and while nothing new comes the prefetcher asks the emulator for
 * the missing segment no more often than its backoff allows: counted
 * requests, bounded by the backoff schedule over the measured window.
 */
import test from 'ava';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_DEFER_MS } from '../../../agent/wal/prefetch-plan.ts';
import { SPOOL_DIR } from '../../../agent/wal/spool-entry.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { writeFile } from 'node:fs/promises';

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('prefetch-standby', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: 'clusters/standby' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

async function rows(cluster: Cluster): Promise<number> {
  const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM items');
  return Number(n);
}

/** The most attempts on one missing name that fit in `ms` when they follow the backoff schedule (0.5 s doubling to MAX_DEFER_MS), from its start. */
function attemptsAllowed(ms: number): number {
  let attempts = 1;
  for (let elapsed = 0, i = 0; ; i++) {
    elapsed += Math.min(MAX_DEFER_MS, 500 * 2 ** i);
    if (elapsed > ms) return attempts;
    attempts++;
  }
}

test('a standby asking for the next segment while the primary archives is served nothing before it exists, and the prefetcher does not spin', async (t) => {
  const env = { ...stack.env };
  const primary = await startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  cleanups.push(() => primary.destroy());
  await runRepoCreate(agent.command, primary, env);
  await primary.query('CREATE TABLE items (id bigserial PRIMARY KEY, payload text)');
  const pushed = await runGcwal(agent.command, ['backup-push', primary.pgdata], { asUser: 'postgres', env: { ...primary.env, ...env } });
  t.is(pushed.code, 0, pushed.stderr);

  const dest = path.join(work.path, 'standby');
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--recovery', '--gcwal-command', agent.command], { asUser: 'postgres', env });
  t.is(fetched.code, 0, fetched.stderr);
  await writeFile(path.join(dest, 'standby.signal'), '');
  const standby = await startClusterFromDirectory(dest, { serverEnv: env });
  cleanups.push(() => standby.destroy());

  // The primary archives while the standby follows: each round's rows, and only them.
  let last = '';
  for (let round = 1; round <= 3; round++) {
    await primary.query('INSERT INTO items (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 3000) g');
    last = await primary.switchWal();
    await primary.waitForArchived(last, 60_000);
    const want = await rows(primary);
    let got = -1;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && got !== want; await sleep(200)) got = await rows(standby).catch(() => -1);
    t.is(got, want, `round ${round}: the standby has ${got} rows, the primary ${want}\n${await standby.logTail()}`);
  }

  // Nothing more is archived. The standby asks for the segment after `last`
  // (wal-fetch, every wal_retrieve_retry_interval); the prefetcher asks for
  // the one after that, as the end of the archive, on its backoff.
  const tli = Number.parseInt(last.slice(0, 8), 16);
  const next = (k: number) =>
    `${tli.toString(16).toUpperCase().padStart(8, '0')}${(BigInt(`0x${last.slice(8)}`) + BigInt(k)).toString(16).toUpperCase().padStart(16, '0')}`;
  const ahead = next(2);
  const seen: string[] = [];
  stack.emulator.setFaults({ rate: 0, kinds: [], match: (method, target) => (seen.push(`${method} ${decodeURIComponent(target)}`), false) });
  const started = Date.now();
  await sleep(12_000);
  const window = Date.now() - started;
  stack.emulator.setFaults(undefined);
  const attempts = seen.filter((l) => l.includes(`/wal/${ahead}`)).length;
  t.true(attempts >= 1, `the prefetcher never asked for ${ahead}: ${seen.length} requests`);
  t.true(attempts <= attemptsAllowed(window), `${attempts} requests for ${ahead} in ${window} ms; the backoff allows ${attemptsAllowed(window)}`);
  const spooled = await readdir(path.join(dest, 'pg_wal', SPOOL_DIR)).catch(() => [] as string[]);
  t.false(
    spooled.some((n) => n === next(1) || n === ahead),
    `spooled before it exists: ${spooled.join(' ')}`,
  );

  // The next segment arrives: the standby replays it, and has exactly the primary's rows.
  await primary.query('INSERT INTO items (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 3000) g');
  await primary.waitForArchived(await primary.switchWal(), 60_000);
  const want = await rows(primary);
  let got = -1;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && got !== want; await sleep(200)) got = await rows(standby).catch(() => -1);
  t.is(got, want);
});
