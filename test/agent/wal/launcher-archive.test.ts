/**
 * The launcher's fast path under PostgreSQL's own archiver: a real cluster
 * piles up ready segments with archiving unconfigured, then archives them
 * through the installed agent (local/testkit/install.ts, the same launcher
 * template as dist/gcwal) into a file:// repository, not verbose, as in
 * production. The agent's "Node" is a recorder that logs each call and runs
 * the real Node, so the test sees which calls the shell answered alone.
 */
import test from 'ava';
import { chmod, copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AHEAD_LIMIT, readySegments } from '../../../agent/wal/ahead.ts';
import { MARKER_DIR } from '../../../agent/wal/marker.ts';
import { renderLauncher, shellQuote } from '../../../agent/wal/launcher.mjs';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';

let agent: InstalledAgent;
let work: TempDir;
let cluster: Cluster;
let repo: string;
let nodeLog: string;

test.before(async () => {
  work = await makeTempDir('launcher-archive', { owner: 'postgres' });
  nodeLog = path.join(work.path, 'node-calls.log');
  await writeFile(nodeLog, '');
  await chmod(nodeLog, 0o666);
  const recorder = path.join(work.path, 'node-recorder');
  await writeFile(recorder, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${shellQuote(nodeLog)}\nexec ${shellQuote(process.execPath)} "$@"\n`);
  await chmod(recorder, 0o755);
  agent = await installAgent({ node: recorder });
  repo = `file://${path.join(work.path, 'repo')}`;
  cluster = await startCluster({ walSegSizeMB: 1, serverEnv: { GCWAL_REPO: repo } });
  await repoCreate(repo, cluster);
});

test.after.always(async () => {
  await cluster?.destroy();
  await agent?.cleanup();
  await work?.cleanup();
});

const walDir = () => path.join(cluster.pgdata, 'pg_wal');
const markers = async () => (await readdir(path.join(walDir(), MARKER_DIR)).catch(() => [] as string[])).sort();
/** Segments wal-push ran Node for, in call order. */
const nodeCalls = async () => [...(await readFile(nodeLog, 'utf8')).matchAll(/ wal-push pg_wal\/([0-9A-F]{24})$/gm)].map((m) => m[1]!);

test('the installed agent runs the same launcher as the build', async (t) => {
  const text = await readFile(agent.command, 'utf8');
  t.is(text, await renderLauncher({ node: path.join(work.path, 'node-recorder'), bundle: path.join(agent.dir, 'gcwal.mjs') }));
});

test.serial(
  "PostgreSQL's archiver archives a backlog once each, the shell answering every segment pushed ahead, and every segment fetches back byte-identical",
  async (t) => {
    for (let i = 0; i < 13; i++) {
      await cluster.query(`CREATE TABLE filler_${i} AS SELECT generate_series(1, 2000) AS n`);
      await cluster.switchWal();
    }
    const { next: ready } = await readySegments(walDir(), 'none', 1000);
    t.true(ready.length >= 12, ready.join(' '));
    // The originals, while they are still ready (PostgreSQL may recycle them once archived).
    const originals = path.join(work.path, 'originals');
    await mkdir(originals);
    for (const name of ready) await copyFile(path.join(walDir(), name), path.join(originals, name));

    await cluster.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
    await cluster.query('SELECT pg_reload_conf()');
    await cluster.waitForArchived(ready.at(-1)!, 120_000);

    const [stats] = await cluster.query<{ archived_count: string; failed_count: string }>('SELECT archived_count, failed_count FROM pg_stat_archiver');
    t.is(Number(stats!.failed_count), 0);
    t.is(Number(stats!.archived_count), ready.length);
    // Node ran for one segment in every AHEAD_LIMIT + 1, which pushed the next AHEAD_LIMIT; the shell answered those alone.
    const viaNode = ready.filter((_, i) => i % (AHEAD_LIMIT + 1) === 0);
    t.deepEqual(await nodeCalls(), viaNode);
    t.deepEqual((await readdir(path.join(work.path, 'repo', 'wal'))).sort(), ready);
    const log = await readFile(cluster.logFile, 'utf8');
    t.notRegex(log, /already archived/, 'no segment was pushed twice');
    // The shell never removes a marker: those of the last group wait for the next wal-push to prune them.
    const lastViaNode = ready.indexOf(viaNode.at(-1)!);
    t.deepEqual(await markers(), ready.slice(lastViaNode + 1));

    const fetched = path.join(work.path, 'fetched');
    await mkdir(fetched);
    await chmod(fetched, 0o777);
    for (const name of ready) {
      const r = await runGcwal(agent.command, ['wal-fetch', name, path.join(fetched, name)], { asUser: 'postgres', env: { GCWAL_REPO: repo }, cwd: work.path });
      t.is(r.code, 0, r.stderr);
      t.true((await readFile(path.join(fetched, name))).equals(await readFile(path.join(originals, name))), `${name} differs`);
    }

    // The next segment goes to Node, whose push prunes the markers of segments no longer ready.
    await cluster.query('CREATE TABLE one_more AS SELECT 1 AS n');
    const next = await cluster.switchWal();
    t.false(ready.includes(next));
    await cluster.waitForArchived(next, 60_000);
    t.deepEqual((await nodeCalls()).at(-1), next);
    t.deepEqual(await markers(), []);
  },
);
