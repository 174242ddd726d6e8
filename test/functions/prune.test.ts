/**
 * The prune function in-process on a gs:// repository holding three real
 * base backups (the agent's backup-push against a real PostgreSQL) and the
 * WAL between them (the agent's wal-push), catalogued by the validate
 * function from the storage events the GCS emulator delivered; what it
 * publishes read from gcloud's Pub/Sub emulator by real subscribers.
 */
import test from 'ava';
import { PassThrough } from 'node:stream';
import { pushBackup } from '../../agent/backup/push.ts';
import { createLogger } from '../../agent/log.ts';
import { createProgress } from '../../agent/progress.ts';
import type { BackupMeta } from '../../core/backup/meta.ts';
import { readCatalogue } from '../../core/catalogue/store.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { CATALOGUE_KEY, walObjectKey } from '../../core/layout.ts';
import { planRetention } from '../../core/retention/plan.ts';
import { expandPlanned, plannedCount } from '../../core/retention/planned.ts';
import type { Storage } from '../../core/storage/types.ts';
import type { Runtime } from '../../functions/lib/runtime.ts';
import { makePruneHandler } from '../../functions/prune.ts';
import { makeValidateHandler } from '../../functions/validate.ts';
import { OUTBOX_CLAIM_MS } from '../../functions/lib/catalogue-outbox.ts';
import type { Publisher } from '../../functions/lib/publisher.ts';
import { makeWatchdogHandler } from '../../functions/watchdog.ts';
import { failingPublisher, flipped, ran, schedulerEvent, startHarness, type Harness, type TestRepo } from './harness.ts';
import { pushWal, startWalSource, type WalSource } from './wal-source.ts';
import { createRepositoryIdentity } from '../../core/repository.ts';
import { walEntry } from '../../core/catalogue/runs.ts';

let h: Harness;
let wal: WalSource;
/** the agent's repository: three backups and all WAL, copied into each test's own */
let source: TestRepo;
const backups: BackupMeta[] = [];

async function backup(): Promise<BackupMeta> {
  const quiet = new PassThrough().resume();
  const { cluster } = wal;
  return pushBackup({
    pgdata: cluster.pgdata,
    storage: source.storage,
    config: {
      compression: 'lzo',
      compressionLevel: undefined,
      concurrency: 2,
      partSize: 4 * 1024 * 1024,
      retries: 2,
      pg: { host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres', password: undefined },
    },
    log: createLogger(quiet, 'text', false),
    signal: new AbortController().signal,
    version: '0.0.0-test',
    progress: (label) => createProgress({ out: quiet, interactive: false, label }),
    archiveCheck: false, // the WAL is copied into the repository after the backups
  });
}

test.before(async () => {
  [h, wal] = await Promise.all([startHarness(), startWalSource()]);
  source = await h.repo({ teardown: () => {} });
  await createRepositoryIdentity(source.storage, { systemIdentifier: wal.systemIdentifier, walSegmentSize: wal.segmentSize });
  await wal.cluster.query('INSERT INTO t SELECT n, md5(n::text) FROM generate_series(1, 20000) AS n');
  for (let i = 0; i < 3; i++) {
    backups.push(await backup());
    await wal.produce(2);
  }
  for (const name of await wal.archived()) await pushWal(source.storage, wal, name);
});

test.after.always(async () => {
  await Promise.all([h?.close(), wal?.stop()]);
});

/** key → generation of every object in `storage` */
async function listing(storage: Storage): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const info of storage.list('')) out.set(info.key, info.generation);
  return out;
}

/**
 * A repository with a copy of the agent's objects (bytes and metadata), each
 * validated by the validate function from its finalize event, four instances
 * at once. The objects in `damage` are copied with a byte flipped.
 */
async function catalogued(
  t: Parameters<Harness['repo']>[0],
  env: Record<string, string> = {},
  damage: string[] = [],
): Promise<{ repo: TestRepo; catalogue: Catalogue }> {
  const repo = await h.repo(t, env);
  const events = [];
  for await (const info of source.storage.list('')) {
    if (info.key === CATALOGUE_KEY) continue;
    const stored = damage.includes(info.key)
      ? await repo.put(info.key, flipped((await source.stored(info.key)).bytes, 64), info.metadata)
      : await repo.storage.write(info.key, await source.storage.read(info.key), { metadata: info.metadata });
    events.push(await repo.event(info.key, 'finalized', stored.generation));
  }
  const instances = Array.from({ length: 4 }, () => makeValidateHandler(() => repo.runtime()));
  await Promise.all(events.map((e, i) => instances[i % 4](e)));
  const { catalogue } = await readCatalogue(repo.storage);
  return { repo, catalogue };
}

const prune = async (rt: Runtime) => ran(await makePruneHandler(() => rt)(schedulerEvent('gcwal-prune')));

test('the source holds three valid backups and their wal, all validated', async (t) => {
  const { repo, catalogue } = await catalogued(t);
  t.deepEqual(Object.keys(catalogue.backups).sort(), backups.map((b) => b.name).sort());
  for (const b of Object.values(catalogue.backups)) t.is(b.state, 'valid', b.name);
  for (const p of Object.values(catalogue.parts)) t.is(p.state, 'valid', p.key);
  for (const e of Object.values(catalogue.wal)) t.is(e.state, 'valid', e.name);
  t.true(
    backups.every((b) => b.parts.length >= 2),
    'backups of several parts',
  );
  t.deepEqual(catalogue.alerts, {});
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('prune deletes exactly the planned generations, records and announces them, and a second run deletes nothing', async (t) => {
  const { repo, catalogue } = await catalogued(t, { GCWAL_RETAIN_FULL: '1' });
  const now = new Date();
  const rt = repo.runtime({ now: () => now });
  const plan = planRetention(catalogue, { retainFull: 1 }, now);
  const [oldest, middle, newest] = backups;
  t.deepEqual(plan.deletedBackups, [oldest.name, middle.name]);
  t.deepEqual(plan.keptBackups, [newest.name]);
  // Every backup object of the two old backups, and the WAL before the newest backup's start.
  const oldKeys = [oldest, middle].flatMap((b) => [...b.parts.map((p) => p.key), b.manifest.key, `backups/${b.name}/backup.json`]);
  const oldSegments = (await wal.archived()).filter((n) => /^[0-9A-F]{24}$/.test(n) && n < newest.startWalSegment).map(walObjectKey);
  t.true(oldSegments.length >= 4);
  // A range of a run's segments planned alike stands for each of them.
  const deletes = [...expandPlanned(plan.delete)];
  const planned = deletes.map((o) => o.key);
  t.deepEqual(planned.filter((k) => k.startsWith('backups/')).sort(), oldKeys.sort());
  t.deepEqual(planned.filter((k) => /^wal\/[0-9A-F]{24}$/.test(k)).sort(), oldSegments.sort());
  const before = await listing(repo.storage);

  const { message } = await prune(rt);

  const after = await listing(repo.storage);
  for (const o of deletes) t.false(after.has(o.key), `${o.key} deleted`);
  for (const [key, generation] of before) {
    if (!planned.includes(key) && key !== CATALOGUE_KEY) t.is(after.get(key), generation, `${key} kept as it was`);
  }
  t.is(after.size, before.size - deletes.length);
  t.like(message, {
    format: 1,
    kind: 'pruned',
    repository: repo.url,
    dryRun: false,
    deletedBackups: [oldest.name, middle.name],
    keptBackups: [newest.name],
    kept: plannedCount(plan.keep),
    skipped: [],
    time: now.toISOString(),
  });
  t.deepEqual(
    message.deleted,
    deletes.map((o) => ({ key: o.key, reason: o.reason })),
  );

  const published = await repo.events.waitFor((ms) => ms.find((m) => m.kind === 'pruned'), 'the pruned message');
  t.deepEqual(published, message);
  t.like(repo.events.received.find((r) => r.body.kind === 'pruned')!.attributes, { kind: 'pruned', dryRun: 'false' });

  const recorded = (await readCatalogue(repo.storage)).catalogue;
  t.deepEqual(Object.keys(recorded.backups), [newest.name]);
  for (const o of deletes) {
    if (o.generation === undefined) continue;
    t.is(recorded.tombstones[o.key]?.generation, o.generation, `${o.key} tombstoned`);
    t.false(o.key in recorded.parts || (o.key.startsWith('wal/') && o.key.slice(4) in recorded.wal), `${o.key} out of the catalogue`);
  }
  t.deepEqual(recorded.alerts, {});

  const second = await prune(repo.runtime({ now: () => now }));
  t.deepEqual(second.message.deleted, []);
  t.deepEqual(second.message.deletedBackups, []);
  t.deepEqual(second.message.keptBackups, [newest.name]);
  t.deepEqual(await listing(repo.storage), after);
  await repo.events.waitFor((ms) => ms.filter((m) => m.kind === 'pruned').length === 2, 'the second pruned message');
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('a dry run publishes the plan and deletes nothing', async (t) => {
  const { repo, catalogue } = await catalogued(t, { GCWAL_RETAIN_FULL: '1', GCWAL_PRUNE_DRY_RUN: 'true' });
  const now = new Date();
  const plan = planRetention(catalogue, { retainFull: 1 }, now);
  t.true(plan.delete.length > 0);
  const before = await listing(repo.storage);
  const catalogueBefore = await readCatalogue(repo.storage);

  const { message } = await prune(repo.runtime({ now: () => now }));

  t.deepEqual(await listing(repo.storage), before);
  t.is((await readCatalogue(repo.storage)).generation, catalogueBefore.generation, 'the catalogue was not written');
  t.like(message, { kind: 'pruned', dryRun: true, deletedBackups: plan.deletedBackups, keptBackups: plan.keptBackups, skipped: [] });
  t.deepEqual(
    message.deleted,
    [...expandPlanned(plan.delete)].map((o) => ({ key: o.key, reason: o.reason })),
  );
  const published = await repo.events.waitFor((ms) => ms.find((m) => m.kind === 'pruned'), 'the pruned message');
  t.deepEqual(published, message);
  t.like(repo.events.received.find((r) => r.body.kind === 'pruned')!.attributes, { kind: 'pruned', dryRun: 'true' });
});

test('a policy that keeps every backup deletes only the wal from before the oldest one', async (t) => {
  const { repo } = await catalogued(t, { GCWAL_RETAIN_FULL: '5' });
  const before = await listing(repo.storage);
  const { message } = await prune(repo.runtime());
  t.deepEqual(message.deletedBackups, []);
  t.deepEqual(
    message.keptBackups,
    backups.map((b) => b.name),
  );
  const early = [...before.keys()].filter((k) => /^wal\/[0-9A-F]{24}$/.test(k) && k.slice(4) < backups[0].startWalSegment);
  t.true(early.length > 0);
  t.deepEqual(
    message.deleted.map((d) => d.key),
    early,
  );
  t.deepEqual(message.warnings, ['only 3 restorable backups, fewer than retain-full 5; all are kept']);
  const after = await listing(repo.storage);
  t.deepEqual(
    [...before.keys()].filter((k) => !after.has(k)),
    early,
  );
});

test('when announcing the alert a prune resolves fails, it still publishes what it deleted, and the resolution goes out later', async (t) => {
  const first = (await wal.archived()).find((n) => /^[0-9A-F]{24}$/.test(n))!;
  const { repo, catalogue } = await catalogued(t, { GCWAL_RETAIN_FULL: '1' }, [walObjectKey(first)]);
  const id = `corrupt-object:${walObjectKey(first)}:${walEntry(catalogue, first)!.generation}`;
  t.deepEqual(Object.keys(catalogue.alerts), [id]);
  await repo.alerts.waitFor((ms) => ms.find((m) => m.id === id), 'the corrupt-object alert');

  const now = new Date();
  const rt = repo.runtime({ now: () => now });
  // Pub/Sub refuses the alerts topic only: the test needs one topic to fail on cue.
  const publisher: Publisher = {
    publishJson: (topic, body, attributes) =>
      topic === rt.config.alertsTopic ? failingPublisher().publishJson(topic, body) : rt.publisher.publishJson(topic, body, attributes),
    close: () => rt.publisher.close(),
  };
  await t.throwsAsync(makePruneHandler(() => ({ ...rt, publisher }))(schedulerEvent('gcwal-prune')), {
    message: new RegExp(`could not publish to pub/sub topic ${rt.config.alertsTopic}`),
  });

  const pruned = await repo.events.waitFor((ms) => ms.find((m) => m.kind === 'pruned'), 'the pruned message');
  t.true(pruned.deleted.some((d: { key: string }) => d.key === walObjectKey(first)));
  t.false((await listing(repo.storage)).has(walObjectKey(first)));
  const stuck = await repo.catalogue();
  t.deepEqual(stuck.alerts, {});
  t.deepEqual(
    stuck.outbox?.map((m) => [m.id, m.status]),
    [[id, 'resolved']],
  );

  // The watchdog's next scheduled run publishes the resolution.
  await makeWatchdogHandler(() => repo.runtime({ now: () => new Date(now.getTime() + OUTBOX_CLAIM_MS + 60_000) }))(schedulerEvent('gcwal-watchdog'));
  t.deepEqual(
    (await repo.alerts.quiet()).map((m) => `${m.id} ${m.status}`),
    [`${id} open`, `${id} resolved`],
  );
  t.is((await repo.catalogue()).outbox, undefined);
});
