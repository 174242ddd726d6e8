/**
 * Asynchronous archiving (GCWAL_ARCHIVE_ASYNC=on) to gs:// through the
 * local stack, with a real PostgreSQL (issue 17): the emulator failing every
 * request for 10 s while PostgreSQL writes, and a second cluster on the same
 * host archiving asynchronously into a file:// repository at the same time.
 * Both clusters are shared by the tests of this file.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ARCHIVER_DIR, ARCHIVER_PID, LOG_FILE } from '../../../agent/wal/archiver-control.ts';
import { Meta, walFileNameFromKey } from '../../../core/layout.ts';
import { openStorage } from '../../../core/storage/open.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack.ts';
import { type Cluster, startCluster } from '../../../local/testkit/cluster.ts';
import { type InstalledAgent, installAgent } from '../../../local/testkit/install.ts';
import { clusterIdentity, repoCreate, runRepoCreate } from '../../../local/testkit/repo.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';
import { checkRepository } from '../crash/kill.ts';

const OUTAGE_MS = 10_000;

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;
/** archives to gs:// on the emulator */
let cloud: Cluster;
/** another cluster on this host, archiving to file:// */
let local: Cluster;
let localRepo: string;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('archiver-gcs', { owner: 'postgres' });
  stack = await startLocalStack({ prefix: 'clusters/async' });
  adoptStackEnv(stack);
  // Few and short retries, so that a call fails well within the outage and PostgreSQL counts it.
  const cloudEnv = { ...stack.env, GCWAL_ARCHIVE_ASYNC: 'on', GCWAL_RETRIES: '0', GCWAL_RETRY_MAX_DELAY: '1' };
  localRepo = `file://${path.join(work.path, 'repo')}`;
  [cloud, local] = await Promise.all([
    startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: cloudEnv }),
    startCluster({ walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv: { GCWAL_REPO: localRepo, GCWAL_ARCHIVE_ASYNC: 'on' } }),
  ]);
  await runRepoCreate(agent.command, cloud, stack.env);
  await repoCreate(localRepo, local);
});

test.after.always(async () => {
  stack?.emulator.setFaults(undefined);
  await cloud?.destroy();
  await local?.destroy();
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

type Stats = { archived_count: string; failed_count: string; last_archived_wal: string | null };
const stats = async (cluster: Cluster) => (await cluster.query<Stats>('SELECT archived_count, failed_count, last_archived_wal FROM pg_stat_archiver'))[0]!;

/** A few rows and a switch: one more segment ready; resolves with its name. */
async function segment(cluster: Cluster, tag: string): Promise<string> {
  await cluster.query(`CREATE TABLE ${tag} AS SELECT generate_series(1, 3000) AS n`);
  return cluster.switchWal();
}

/** Segment names PostgreSQL marked archived (`.done`) in `cluster`'s pg_wal. */
async function acknowledged(cluster: Cluster): Promise<string[]> {
  return (await readdir(path.join(cluster.pgdata, 'pg_wal', 'archive_status')))
    .filter((e) => e.endsWith('.done'))
    .map((e) => e.slice(0, -'.done'.length))
    .filter((n) => /^[0-9A-F]{24}$/.test(n));
}

/** Segment name → the system identifier its object records. */
async function archivedSegments(storage: Storage): Promise<Map<string, string | undefined>> {
  const found = new Map<string, string | undefined>();
  for await (const info of storage.list('wal/')) {
    const name = walFileNameFromKey(info.key);
    if (name && /^[0-9A-F]{24}$/.test(name)) found.set(name, info.metadata[Meta.systemId]);
  }
  return found;
}

const cloudStorage = () => openStorage(stack.env.GCWAL_REPO!, { gcs: { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } } });

const archiverLog = async (cluster: Cluster) =>
  (await readFile(path.join(cluster.pgdata, 'pg_wal', ARCHIVER_DIR, LOG_FILE), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { severity: string; message: string; segment?: string });

test.serial('two clusters on one host archive at once, each through its own archiver into its own repository only', async (t) => {
  const written = await Promise.all([cloud, local].map(async (c, i) => [await segment(c, `both_${i}_a`), await segment(c, `both_${i}_b`)]));
  await Promise.all([cloud.waitForArchived(written[0]!.at(-1)!, 120_000), local.waitForArchived(written[1]!.at(-1)!, 120_000)]);

  const pids = await Promise.all(
    [cloud, local].map(async (c) => Number.parseInt(await readFile(path.join(c.pgdata, 'pg_wal', ARCHIVER_DIR, ARCHIVER_PID), 'utf8'), 10)),
  );
  t.not(pids[0], pids[1], 'one archiver per pg_wal');
  for (const c of [cloud, local]) t.true((await archiverLog(c)).some((l) => l.message.startsWith('archived ')));

  const [cloudRepo, localStorage] = await Promise.all([cloudStorage(), openStorage(localRepo)]);
  for (const [cluster, storage] of [
    [cloud, cloudRepo],
    [local, localStorage],
  ] as const) {
    const { systemIdentifier } = await clusterIdentity(cluster);
    const objects = await archivedSegments(storage);
    t.deepEqual(
      [...objects].filter(([, id]) => id !== systemIdentifier),
      [],
      'only its own cluster',
    );
    const acked = await acknowledged(cluster);
    t.deepEqual(
      acked.filter((name) => !objects.has(name)),
      [],
      'every acknowledged segment is there',
    );
    await t.notThrowsAsync(checkRepository(storage));
  }
});

test.serial(
  'while the emulator fails every request for 10 s no segment is acknowledged, pg_stat_archiver counts the failures, and archiving resumes',
  async (t) => {
    await cloud.waitForArchived(await segment(cloud, 'before_outage'), 120_000);
    const before = await stats(cloud);
    const written: string[] = [];
    let during: Stats;
    stack.emulator.setFaults({ rate: 1, kinds: ['503'] });
    const started = Date.now();
    try {
      for (let i = 0; i < 3; i++) written.push(await segment(cloud, `outage_${i}`));
      // The whole outage, and at least until PostgreSQL has seen a call fail.
      for (;;) {
        during = await stats(cloud);
        if (Date.now() - started >= OUTAGE_MS && Number(during.failed_count) > Number(before.failed_count)) break;
        if (Date.now() - started > 120_000) break;
        await sleep(200);
      }
    } finally {
      stack.emulator.setFaults(undefined);
    }
    t.true(Number(during!.failed_count) > Number(before.failed_count), 'PostgreSQL saw the failures');
    t.is(during!.archived_count, before.archived_count, 'nothing was acknowledged while every request failed');
    t.is(during!.last_archived_wal, before.last_archived_wal);
    t.true(
      (await archiverLog(cloud)).some((l) => l.severity === 'WARNING' && written.includes(l.segment ?? '')),
      "the archiver's push failed and was logged",
    );

    // Resumes: a new segment wakes PostgreSQL's archiver, which retries the old ones first.
    const last = await segment(cloud, 'after_outage');
    await cloud.waitForArchived(last, 120_000);
    const storage = await cloudStorage();
    const objects = await archivedSegments(storage);
    t.deepEqual(
      [...written, last].filter((name) => !objects.has(name)),
      [],
    );
    t.deepEqual(
      (await acknowledged(cloud)).filter((name) => !objects.has(name)),
      [],
      'every acknowledged segment is in the repository',
    );
    await t.notThrowsAsync(checkRepository(storage));
  },
);
