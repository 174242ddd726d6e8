/**
 * Archiving and restoring through a flaky Cloud Storage: with 20% of the
 * emulator's requests failing (429, 503, a connection reset in the middle of
 * an upload or of a download), 50 segments archived by PostgreSQL's own
 * archiver end up in the bucket exactly once and complete, and every one of
 * them restores byte-identical.
 */
import test from 'ava';
import { mkdir, readdir, readFile, chmod, chown } from 'node:fs/promises';
import path from 'node:path';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../local/testkit/users.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
let cluster: Cluster | undefined;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('faults', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: 'flaky' });
});
test.after.always(async () => {
  await cluster?.destroy();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

async function bucketNames(prefix: string): Promise<string[]> {
  const names: string[] = [];
  let pageToken = '';
  do {
    const res = await fetch(
      `${stack.emulator.url}/storage/v1/b/${stack.bucket}/o?prefix=${encodeURIComponent(prefix)}${pageToken ? `&pageToken=${pageToken}` : ''}`,
      { headers: { Authorization: `Bearer ${stack.adminToken()}` } },
    );
    const body = (await res.json()) as { items?: { name: string }[]; nextPageToken?: string };
    names.push(...(body.items ?? []).map((i) => i.name));
    pageToken = body.nextPageToken ?? '';
  } while (pageToken);
  return names;
}

test('with 20% of requests failing, 50 archived segments are stored once each and restore byte-identical', async (t) => {
  const copies = path.join(work.path, 'copies');
  await mkdir(copies);
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(copies, pg.uid, pg.gid);
  }
  cluster = await startCluster({
    walSegSizeMB: 1,
    archiveCommand: `cp %p ${copies}/%f && ${agent.command} wal-push %p`,
    serverEnv: { ...stack.env, GCWAL_RETRIES: '8', GCWAL_RETRY_MAX_DELAY: '1' },
  });
  await runRepoCreate(agent.command, cluster, stack.env);
  await cluster.query('CREATE TABLE t (id serial, pad text)');
  stack.emulator.setFaults({ rate: 0.2, kinds: ['429', '503', 'reset-upload', 'reset-download'], seed: 20261125 });

  let last = '';
  for (let i = 0; i < 50; i++) {
    await cluster.query('INSERT INTO t (pad) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 600) g');
    last = await cluster.switchWal();
  }
  await cluster.waitForArchived(last, 300_000);
  const { faults: faultsDuringArchive, requests } = stack.emulator.stats();
  // Push-ahead makes one identity read and one upload per segment or fewer
  // (about 60 requests for 50 segments), so 20% is about a dozen faults.
  t.true(faultsDuringArchive >= 5, `only ${faultsDuringArchive} faults were injected in ${requests} requests`);

  const segments = (await readdir(copies)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  t.true(segments.length >= 50, `${segments.length} segments archived`);

  stack.emulator.setFaults(undefined);
  const names = await bucketNames('flaky/');
  const walNames = names.filter((n) => n.startsWith('flaky/wal/')).map((n) => n.slice('flaky/wal/'.length));
  t.deepEqual(walNames.filter((n) => /^[0-9A-F]{24}$/.test(n)).sort(), segments, 'every archived segment is in the bucket, exactly once');
  t.deepEqual(
    names.filter((n) => !n.startsWith('flaky/wal/')),
    ['flaky/gcwal.json'],
    'no stray objects',
  );

  // Restore every segment through the same faults, downloads included.
  stack.emulator.setFaults({ rate: 0.2, kinds: ['429', '503', 'reset-download'], seed: 7 });
  const restoreDir = path.join(work.path, 'restored');
  await mkdir(restoreDir);
  await chmod(restoreDir, 0o777);
  for (const name of segments) {
    const r = await runGcwal(agent.command, ['wal-fetch', name, path.join(restoreDir, name)], {
      env: { ...stack.env, GCWAL_RETRIES: '8', GCWAL_RETRY_MAX_DELAY: '1' },
    });
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    t.true((await readFile(path.join(restoreDir, name))).equals(await readFile(path.join(copies, name))), `${name} differs`);
  }
  t.true(stack.emulator.stats().faults > faultsDuringArchive, 'downloads were faulted too');
  t.deepEqual((await readdir(restoreDir)).sort(), segments, 'no temp files left');
});
