/**
 * Incremental backups end to end with real PostgreSQL 15 (file level): a
 * full backup and two incrementals taken under a light write load, a
 * point-in-time restore of the last one rebuilt from its chain with every
 * table's rows equal to the source's at the target, and a chain whose middle
 * backup is damaged or missing refused before anything is written. One
 * cluster for the file.
 */
import test from 'ava';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('incremental', { owner: 'postgres' });
});
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await work?.cleanup();
  await agent?.cleanup();
});

/** Every user table's rows as one md5 per table, in a stable order. */
async function digest(cluster: Cluster): Promise<Record<string, string>> {
  const tables = await cluster.query<{ name: string }>(
    "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name FROM pg_stat_user_tables ORDER BY 1",
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await cluster.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS md5 FROM ${name} t`);
    out[name] = row.md5;
  }
  return out;
}

/** Rows into `items` every few milliseconds until stopped: the light load the backups run under. */
function writer(cluster: Cluster): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      await cluster.query("INSERT INTO items (batch, payload) SELECT 'load', repeat(md5(g::text), 8) FROM generate_series(1, 200) g");
      await sleep(20);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** A table written once, frozen and flushed, then left alone: its file keeps its size and time. */
async function settledTable(cluster: Cluster, name: string, rows: number): Promise<void> {
  await cluster.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false)`);
  await cluster.query(`INSERT INTO ${name} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, ${rows}) g`);
  await cluster.query(`VACUUM (FREEZE) ${name}`);
  await cluster.query('CHECKPOINT');
}

interface Manifest {
  path: string;
  type: string;
  ref?: string;
  part?: number;
}

async function manifestOf(repo: string, name: string): Promise<Manifest[]> {
  const text = await readFile(path.join(repo, 'backups', name, 'manifest.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Manifest);
}

async function relationPath(cluster: Cluster, table: string): Promise<string> {
  const [row] = await cluster.query<{ path: string }>('SELECT pg_relation_filepath($1) AS path', [table]);
  return row.path;
}

test('a full and two incremental backups taken under load restore to a point in time from the last, every table equal to the source', async (t) => {
  const repo = path.join(work.path, 'repo');
  const env = { GCWAL_REPO: `file://${repo}` };
  const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  cleanups.push(() => source.destroy());
  await runRepoCreate(agent.command, source, env);
  const push = async (...args: string[]) => {
    const r = await runGcwal(agent.command, ['backup-push', ...args, source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
    return { ...r, name: r.stdout.trim().split('\n').pop()! };
  };

  const orphan = await push('--incremental');
  t.is(orphan.code, 2, orphan.stderr);
  t.regex(orphan.stderr, /no backup of cluster \d+ in the repository to be the parent of an incremental backup \(take a full backup first/);

  await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
  await settledTable(source, 'settled', 3000);
  await source.query('CREATE TABLE dropped (id int)');
  await source.query('INSERT INTO dropped SELECT generate_series(1, 1000)');
  // The settled table's time a whole second before the full backup starts (the same-second guard).
  await sleep(1100);

  const load = writer(source);
  const full = await push();
  t.is(full.code, 0, full.stderr);
  await settledTable(source, 'middle', 2000);
  await sleep(1100);
  const inc1 = await push('--incremental');
  t.is(inc1.code, 0, inc1.stderr);
  await source.query('DROP TABLE dropped');
  await source.query("INSERT INTO items (batch, payload) SELECT 'after-inc1', md5(g::text) FROM generate_series(1, 5000) g");
  const inc2 = await push('--incremental');
  t.is(inc2.code, 0, inc2.stderr);
  await load.stop();

  // The chain as backup-list shows it.
  const listed = await runGcwal(agent.command, ['backup-list', '--json'], { env });
  t.is(listed.code, 0, listed.stderr);
  const backups = JSON.parse(listed.stdout) as { name: string; parent?: string; full?: string; rawSize: number }[];
  t.deepEqual(
    backups.map((b) => [b.name, b.parent, b.full]),
    [
      [full.name, undefined, undefined],
      [inc1.name, full.name, full.name],
      [inc2.name, inc1.name, full.name],
    ],
  );
  t.true(backups[2].rawSize < backups[0].rawSize, 'the last incremental stores less than the full backup');

  // Unchanged files point at the backup holding their bytes; changed ones are stored.
  const last = new Map((await manifestOf(repo, inc2.name)).map((e) => [e.path, e]));
  t.is(last.get(await relationPath(source, 'settled'))?.ref, full.name);
  t.is(last.get(await relationPath(source, 'middle'))?.ref, inc1.name);
  t.is(last.get('global/pg_control')?.ref, undefined);
  t.not(last.get('global/pg_control')?.part, undefined);

  // B is committed before the target time, C after it.
  await source.query("INSERT INTO items (batch, payload) SELECT 'B', md5(g::text) FROM generate_series(1, 1500) g");
  const expected = await digest(source);
  const [{ target }] = await source.query<{ target: string }>(
    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target",
  );
  await sleep(1200);
  await source.query("INSERT INTO items (batch, payload) SELECT 'C', md5(g::text) FROM generate_series(1, 700) g");
  await source.waitForArchived(await source.switchWal(), 60_000);

  const fetch = (dest: string) =>
    runGcwal(agent.command, ['backup-fetch', path.join(work.path, dest), 'LATEST', '--target-time', target, '--gcwal-command', agent.command], {
      asUser: 'postgres',
      env,
    });

  // The middle backup damaged: its manifest's bytes, then its backup.json gone. Refused by name, nothing written.
  const middleManifest = path.join(repo, 'backups', inc1.name, 'manifest.jsonl');
  // Written in place (and moved outside the repository): the objects keep their owner, and listings see nothing else.
  const text = await readFile(middleManifest, 'utf8');
  await writeFile(middleManifest, text.replace('"type":"file"', '"type":"FILE"'));
  const damaged = await fetch('damaged');
  t.is(damaged.code, 6, damaged.stderr);
  t.regex(damaged.stderr, new RegExp(`manifest of backup ${inc1.name}`));
  await writeFile(middleManifest, text);
  const middleMeta = path.join(repo, 'backups', inc1.name, 'backup.json');
  const aside = path.join(work.path, 'backup.json.aside');
  await rename(middleMeta, aside);
  const missing = await fetch('missing');
  t.is(missing.code, 6, missing.stderr);
  t.regex(missing.stderr, new RegExp(`backup ${inc1.name}, the parent of ${inc2.name} in the chain of ${inc2.name}, is missing from the repository`));
  await rename(aside, middleMeta);

  // The whole chain: restored to the target, every table as the source had it then.
  const fetched = await fetch('restored');
  t.is(fetched.code, 0, fetched.stderr);
  t.regex(fetched.stderr, new RegExp(`restoring it from its chain, ${full.name} → ${inc1.name} → ${inc2.name}`));
  const restored = await startClusterFromDirectory(path.join(work.path, 'restored'), { serverEnv: env });
  cleanups.push(() => restored.destroy());
  for (let deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(200)) {
    const [row] = await restored.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
    if (row.state === 'paused') break;
  }
  t.deepEqual(await digest(restored), expected);
  const [{ n }] = await restored.query<{ n: string }>("SELECT count(*) AS n FROM items WHERE batch = 'C'");
  t.is(Number(n), 0, 'nothing committed after the target');
});
