/**
 * The validate function in-process, fed the storage CloudEvents the local GCS
 * emulator delivers (exactly Eventarc's shape), on a gs:// repository, with
 * real WAL pushed by the agent's wal-push and gcloud's real Pub/Sub emulator
 * read by real subscribers.
 */
import test, { type ExecutionContext } from 'ava';
import { walObjectKey } from '../../core/layout.ts';
import { makeCatalogueHandler } from '../../functions/catalogue.ts';
import { makeValidateHandler } from '../../functions/validate.ts';
import { makeWatchdogHandler } from '../../functions/watchdog.ts';
import { OUTBOX_CLAIM_MS } from '../../functions/lib/catalogue-outbox.ts';
import type { Runtime } from '../../functions/lib/runtime.ts';
import { failingPublisher, flipped, ran, schedulerEvent, startHarness, type Harness, type TestRepo } from './harness.ts';
import { pushWal, startWalSource, type WalSource } from './wal-source.ts';
import { walEntries, walEntry } from '../../core/catalogue/runs.ts';
import type { Storage } from '../../core/storage/types.ts';
import { makeSyntheticBackup, writeObjects } from '../../local/testkit/synthetic-backup.ts';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pushWalFile } from '../../agent/wal/push.ts';
import { createRepositoryIdentity } from '../../core/repository.ts';
import { makeTempDir } from '../../local/testkit/tmp.ts';
import { syntheticSegment } from '../core/wal/synthetic-segment.ts';

let h: Harness;
let wal: WalSource;
/** archived segments, oldest first; each test uses its own repository */
let segments: string[];

test.before(async () => {
  [h, wal] = await Promise.all([startHarness(), startWalSource()]);
  await wal.produce(4);
  segments = (await wal.archived()).filter((n) => /^[0-9A-F]{24}$/.test(n));
});

test.after.always(async () => {
  await Promise.all([h?.close(), wal?.stop()]);
});

const validate = (rt: Runtime) => makeValidateHandler(() => rt);

/**
 * Store under `name` the bytes the agent would store for `source`, with one
 * byte flipped: a corrupted upload whose metadata still names the real raw
 * size and checksum. The real object is pushed to a scratch repository first.
 */
async function pushCorrupt(t: ExecutionContext, repo: TestRepo, name: string, source = name): Promise<string> {
  const scratch = await h.repo(t);
  await pushWal(scratch.storage, wal, source);
  const { bytes, metadata } = await scratch.stored(walObjectKey(source));
  const info = await repo.put(walObjectKey(name), flipped(bytes, Math.floor(bytes.length / 2)), metadata);
  return info.generation;
}

test('a segment pushed by the agent is validated, catalogued as valid and announced on the events topic', async (t) => {
  const repo = await h.repo(t);
  const name = segments[0];
  const info = await pushWal(repo.storage, wal, name);
  const outcome = await validate(repo.runtime())(await repo.event(walObjectKey(name), 'finalized', info.generation));

  t.like(outcome, { status: 'validated', key: walObjectKey(name), generation: info.generation, result: { ok: true, rawSize: wal.segmentSize } });
  const catalogue = await repo.catalogue();
  t.like(walEntry(catalogue, name), { name, generation: info.generation, size: info.size, state: 'valid' });
  // What the record walk read, for gcwal status and backup-fetch's target checks (the segment is folded into a run, which keeps them).
  t.true(Array.isArray(walEntry(catalogue, name)!.records?.restorePoints), JSON.stringify(catalogue.walRuns));
  t.is(catalogue.systemIdentifier, wal.systemIdentifier);
  t.is(catalogue.walSegmentSize, wal.segmentSize);
  t.deepEqual(catalogue.alerts, {});
  t.is(catalogue.outbox, undefined);

  const message = await repo.events.waitFor((ms) => ms.find((m) => m.key === walObjectKey(name)), 'the validated message');
  t.like(message, {
    format: 1,
    kind: 'validated',
    repository: repo.url,
    key: walObjectKey(name),
    generation: info.generation,
    ok: true,
    rawSize: wal.segmentSize,
  });
  t.like(repo.events.received[0].attributes, { kind: 'validated', ok: 'true', key: walObjectKey(name) });
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('the same finalize event delivered twice validates twice and leaves one entry with the same verdict', async (t) => {
  const repo = await h.repo(t);
  const name = segments[1];
  const info = await pushWal(repo.storage, wal, name);
  const event = await repo.event(walObjectKey(name), 'finalized', info.generation);

  await validate(repo.runtime())(event);
  const first = await repo.catalogue();
  // The redelivery reaches another instance, as it may on Cloud Functions.
  const again = await validate(repo.runtime())(structuredClone(event));
  const second = await repo.catalogue();

  t.like(again, { status: 'validated', result: { ok: true } });
  // The second verdict is the same; only the time of the latest validation moves.
  const { validated: firstTime, ...firstEntry } = walEntry(first, name)!;
  const { validated: secondTime, ...secondEntry } = walEntry(second, name)!;
  t.deepEqual(secondEntry, firstEntry);
  t.like(secondEntry, { name, generation: info.generation, state: 'valid' });
  t.true(Date.parse(secondTime!) >= Date.parse(firstTime!));
  t.deepEqual(
    [...walEntries(second)].map((e) => e.name),
    [name],
  );
  t.deepEqual({ ...second, wal: {}, walRuns: [], updated: '' }, { ...first, wal: {}, walRuns: [], updated: '' });
  const messages = await repo.events.waitFor((ms) => (ms.length === 2 ? ms : undefined), 'two validated messages');
  t.true(messages.every((m) => m.ok === true && m.key === walObjectKey(name) && m.generation === info.generation));
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('a corrupt segment validated twice raises one alert, and deleting it and pushing it again resolves it', async (t) => {
  const repo = await h.repo(t);
  const [good, bad] = [segments[0], segments[1]];
  await pushWal(repo.storage, wal, good);
  const generation = await pushCorrupt(t, repo, bad);
  const event = await repo.event(walObjectKey(bad), 'finalized', generation);

  const first = await validate(repo.runtime())(event);
  const second = await validate(repo.runtime())(structuredClone(event));
  for (const outcome of [first, second]) t.like(outcome, { status: 'validated', result: { ok: false } });

  const id = `corrupt-object:${walObjectKey(bad)}:${generation}`;
  const alerts = await repo.alerts.quiet();
  t.is(alerts.length, 1, JSON.stringify(alerts));
  // gcwal.json names the cluster even before any good segment has been validated.
  t.like(alerts[0], {
    format: 1,
    id,
    status: 'open',
    kind: 'corrupt-object',
    severity: 'CRITICAL',
    cluster: wal.systemIdentifier,
    repository: repo.url,
    details: { key: walObjectKey(bad), generation },
  });
  t.regex(alerts[0].summary, new RegExp(`wal segment ${bad} .*failed validation`));
  t.like(repo.alerts.received[0].attributes, { id, status: 'open', kind: 'corrupt-object', severity: 'CRITICAL' });
  const events = await repo.events.waitFor((ms) => (ms.length === 2 ? ms : undefined), 'two validated messages');
  t.true(events.every((m) => m.ok === false && typeof m.problem === 'string' && m.generation === generation));
  let catalogue = await repo.catalogue();
  t.like(walEntry(catalogue, bad), { generation, state: 'corrupt' });
  t.deepEqual(Object.keys(catalogue.alerts), [id]);

  // An operator deletes the damaged object; the catalogue function sees it go.
  await repo.storage.delete(walObjectKey(bad));
  await makeCatalogueHandler(() => repo.runtime())(await repo.event(walObjectKey(bad), 'deleted', generation));
  const resolved = await repo.alerts.waitFor((ms) => ms.find((m) => m.status === 'resolved'), 'the resolution');
  t.like(resolved, { id, status: 'resolved', kind: 'corrupt-object', severity: 'CRITICAL' });
  t.regex(resolved.summary, /^resolved after /);

  // The agent archives the segment again, this time intact: no alert.
  const info = await pushWal(repo.storage, wal, bad);
  t.true(BigInt(info.generation) > BigInt(generation));
  t.like(await validate(repo.runtime())(await repo.event(walObjectKey(bad), 'finalized', info.generation)), { result: { ok: true } });
  catalogue = await repo.catalogue();
  t.like(walEntry(catalogue, bad), { generation: info.generation, state: 'valid' });
  t.deepEqual(catalogue.alerts, {});
  t.is(catalogue.outbox, undefined);
  t.deepEqual(
    (await repo.alerts.quiet()).map((m) => m.status),
    ['open', 'resolved'],
  );
});

test("a segment stored under another segment's name fails validation and raises an alert", async (t) => {
  const repo = await h.repo(t);
  await pushWal(repo.storage, wal, segments[0]);
  // The agent's bytes and metadata of segments[1], stored as segments[2]: what a rename in the bucket leaves.
  const scratch = await h.repo(t);
  await pushWal(scratch.storage, wal, segments[1]);
  const { bytes, metadata } = await scratch.stored(walObjectKey(segments[1]));
  const info = await repo.put(walObjectKey(segments[2]), bytes, metadata);

  const outcome = await validate(repo.runtime())(await repo.event(walObjectKey(segments[2]), 'finalized', info.generation));
  t.like(outcome, { status: 'validated', result: { ok: false } });
  t.regex((outcome as { result: { problem: string } }).result.problem, /holds WAL from .*but its name places it at/);
  const [alert] = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the alert');
  t.is(alert.id, `corrupt-object:${walObjectKey(segments[2])}:${info.generation}`);
});

test('an alert survives a publish failure: the next run publishes it from the outbox, once', async (t) => {
  const repo = await h.repo(t);
  await pushWal(repo.storage, wal, segments[0]);
  const generation = await pushCorrupt(t, repo, segments[1]);
  const event = await repo.event(walObjectKey(segments[1]), 'finalized', generation);

  const down = failingPublisher();
  await t.throwsAsync(validate(repo.runtime({ publisher: down }))(event), { message: /could not publish/ });
  t.is(down.attempts, 1);
  const stuck = await repo.catalogue();
  const id = `corrupt-object:${walObjectKey(segments[1])}:${generation}`;
  t.deepEqual(Object.keys(stuck.alerts), [id], 'the incident is committed with the verdict');
  t.deepEqual(
    stuck.outbox?.map((m) => [m.id, m.status]),
    [[id, 'open']],
  );
  t.deepEqual(await repo.alerts.quiet(), []);

  // Pub/Sub is back: the watchdog's next scheduled run, a few minutes on,
  // publishes what the failed run left (see OUTBOX_CLAIM_MS).
  const later = new Date(Date.now() + OUTBOX_CLAIM_MS + 60_000);
  const outcome = ran(await makeWatchdogHandler(() => repo.runtime({ now: () => later }))(schedulerEvent('gcwal-watchdog')));
  t.deepEqual(
    outcome.open.map((a) => a.id),
    [id],
  );
  const alerts = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the alert');
  t.like(alerts[0], { id, status: 'open' });
  t.is((await repo.catalogue()).outbox, undefined);

  // The event is delivered again (it failed): the verdict stands, nothing is announced twice.
  t.like(await validate(repo.runtime())(structuredClone(event)), { result: { ok: false } });
  t.deepEqual(
    (await repo.alerts.quiet()).map((m) => [m.id, m.status]),
    [[id, 'open']],
  );
});

test('a segment with a page magic newer than gcwal knows is validated, and the function logs a WARNING saying so', async (t) => {
  const repo = await h.repo(t);
  await createRepositoryIdentity(repo.storage, { systemIdentifier: wal.systemIdentifier, walSegmentSize: wal.segmentSize });
  // A release after 18 (0xD119), its header otherwise this cluster's: what the agent archives with a warning.
  const dir = await makeTempDir('validate-newer-wal');
  t.teardown(() => dir.cleanup());
  const name = '000000010000000000000003';
  await writeFile(path.join(dir.path, name), syntheticSegment(3n, { magic: 0xd119, systemIdentifier: wal.systemIdentifier, segmentSize: wal.segmentSize }));
  await pushWalFile(repo.storage, path.join(dir.path, name), { codec: 'lzo', level: undefined });
  const info = (await repo.storage.stat(walObjectKey(name)))!;

  const outcome = await validate(repo.runtime())(await repo.event(walObjectKey(name), 'finalized', info.generation));
  t.like(outcome, { status: 'validated', result: { ok: true } });
  const warning = outcome.status === 'validated' ? outcome.result.details?.warning : undefined;
  t.regex(String(warning), /^WAL page magic 0xD119 is newer than PostgreSQL 18's/);
  const logged = repo.logs.filter((l) => l.key === walObjectKey(name) && String(l.message).startsWith(`validated ${walObjectKey(name)}`));
  t.is(logged.length, 1, JSON.stringify(logged));
  t.like(logged[0], { severity: 'WARNING', message: `validated ${walObjectKey(name)}: ${warning}`, generation: info.generation });
  t.like(walEntry(await repo.catalogue(), name), { state: 'valid' });
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('a late event for an object that is gone is ignored', async (t) => {
  const repo = await h.repo(t);
  const name = segments[0];
  const info = await pushWal(repo.storage, wal, name);
  const event = await repo.event(walObjectKey(name), 'finalized', info.generation);
  await repo.storage.delete(walObjectKey(name));

  const outcome = await validate(repo.runtime())(event);
  t.deepEqual(outcome, { status: 'ignored', reason: `${walObjectKey(name)} is gone` });
  t.deepEqual((await repo.catalogue()).wal, {});
  t.deepEqual(await repo.events.quiet(), []);
  t.true(repo.logs.some((l) => l.severity === 'DEBUG' && String(l.message).includes('is gone')));
});

test('a late event for a replaced generation is ignored, and the replacement is validated', async (t) => {
  const repo = await h.repo(t);
  const name = segments[2];
  const first = await pushWal(repo.storage, wal, name);
  const late = await repo.event(walObjectKey(name), 'finalized', first.generation);
  // Replaced behind the agent's back (deleted and pushed again): a new generation.
  await repo.storage.delete(walObjectKey(name));
  const second = await pushWal(repo.storage, wal, name);
  t.not(second.generation, first.generation);

  const outcome = await validate(repo.runtime())(late);
  t.deepEqual(outcome, { status: 'ignored', reason: `${walObjectKey(name)} generation ${first.generation} was replaced by ${second.generation}` });
  t.deepEqual((await repo.catalogue()).wal, {});

  t.like(await validate(repo.runtime())(await repo.event(walObjectKey(name), 'finalized', second.generation)), {
    status: 'validated',
    generation: second.generation,
    result: { ok: true },
  });
  t.like(walEntry(await repo.catalogue(), name), { generation: second.generation, state: 'valid' });
  const messages = await repo.events.quiet();
  t.deepEqual(
    messages.map((m) => m.generation),
    [second.generation],
  );
});

test('events the function does not validate are ignored without touching the catalogue', async (t) => {
  const repo = await h.repo(t);
  const info = await pushWal(repo.storage, wal, segments[0]);
  const finalized = await repo.event(walObjectKey(segments[0]), 'finalized', info.generation);
  const rt = repo.runtime();
  const cases: { name: string; event: typeof finalized; reason: RegExp }[] = [
    { name: 'a delete', event: { ...finalized, type: 'google.cloud.storage.object.v1.deleted' }, reason: /not an object finalized in the repository/ },
    { name: 'a metadata update', event: { ...finalized, type: 'google.cloud.storage.object.v1.metadataUpdated' }, reason: /not an object finalized/ },
    {
      name: 'an object of another repository in the bucket',
      event: { ...finalized, data: { ...finalized.data, name: `elsewhere/${walObjectKey(segments[0])}` } },
      reason: /not an object finalized in the repository/,
    },
    {
      name: 'the repository identity',
      event: await repo.event('gcwal.json', 'finalized'),
      reason: /gcwal\.json is checked with its backup, or not catalogued/,
    },
  ];
  for (const c of cases) {
    const outcome = await validate(rt)(c.event);
    t.is(outcome.status, 'ignored', c.name);
    t.regex((outcome as { reason: string }).reason, c.reason, c.name);
  }
  t.deepEqual((await repo.catalogue()).wal, {});
  t.deepEqual(await repo.events.quiet(), []);
});

test('with GCWAL_CATALOGUE_REPO the catalogue is kept there and nothing is written into the watched repository', async (t) => {
  const elsewhere = await h.repo(t);
  const repo = await h.repo(t, { GCWAL_CATALOGUE_REPO: elsewhere.url });
  const info = await pushWal(repo.storage, wal, segments[0]);
  t.like(await validate(repo.runtime())(await repo.event(walObjectKey(segments[0]), 'finalized', info.generation)), { result: { ok: true } });
  t.like(walEntry(await elsewhere.catalogue(), segments[0]), { generation: info.generation, state: 'valid' });
  const keys: string[] = [];
  for await (const o of repo.storage.list('')) keys.push(o.key);
  t.deepEqual(keys, ['gcwal.json', walObjectKey(segments[0])]);
});

/** Run `work` on every item, `concurrency` at a time. */
async function eachAtOnce<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i], i);
      }
    }),
  );
}

/** `rt` whose repository notes the key of every object read. */
function readingRuntime(rt: Runtime, reads: string[]): Runtime {
  const wrap = (storage: Storage): Storage =>
    new Proxy(storage, {
      get(target, prop) {
        if (prop === 'read')
          return (key: string, ...rest: unknown[]) => (reads.push(key), (target.read as (...a: unknown[]) => unknown).call(target, key, ...rest));
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  return { ...rt, storage: async () => wrap(await rt.storage()) };
}

test("a backup of 1,000 parts is judged from its parts' verdicts, and the one damaged part is reported by name", async (t) => {
  const repo = await h.repo(t);
  const backup = await makeSyntheticBackup({ parts: 1000, systemIdentifier: wal.systemIdentifier, damaged: [617] });
  await writeObjects(repo.storage, [...backup.parts, backup.manifest, backup.backupJson], 64);
  // backup.json's event arrives halfway through the parts', at another instance.
  const instance = validate(repo.runtime());
  const reads: string[] = [];
  const metaInstance = validate(readingRuntime(repo.runtime(), reads));
  const keys = backup.parts.map((p) => p.key);
  const order = [...keys.slice(0, 500), backup.backupJson.key, ...keys.slice(500)];
  await eachAtOnce(order, 200, async (key) => {
    const outcome = ran(await (key === backup.backupJson.key ? metaInstance : instance)(await repo.event(key, 'finalized')));
    t.like(outcome, { status: 'validated', result: { ok: true } }, key);
  });
  t.deepEqual(reads.filter((k) => k.startsWith('backups/')).sort(), [backup.backupJson.key, backup.manifest.key], "backup.json's check reads no part");

  const catalogue = await repo.catalogue();
  const judged = catalogue.backups[backup.name];
  t.is(judged.state, 'corrupt');
  t.regex(
    judged.problem!,
    new RegExp(
      `^part 617 \\(backups/${backup.name}/part_00617\\.tar\\) of backup ${backup.name} does not hold what backup\\.json and the manifest record for it`,
    ),
  );
  t.is(judged.awaiting, undefined);
  t.is(Object.values(catalogue.parts).filter((p) => p.state === 'valid' && p.seal !== undefined).length, 1000, 'each part alone is a fine tar stream');
  const alert = await repo.alerts.waitFor((ms) => ms.find((m) => m.kind === 'corrupt-object' && m.details?.backup === backup.name), "the backup's alert");
  t.regex(alert.summary, /part 617 \(backups\/.*\/part_00617\.tar\)/);
  t.is((await repo.alerts.quiet()).length, 1);
});

test("a backup whose backup.json is checked before its parts are validated becomes valid with the last part's verdict", async (t) => {
  const repo = await h.repo(t);
  const backup = await makeSyntheticBackup({ parts: 3, systemIdentifier: wal.systemIdentifier, startSegment: '000000010000000000000005' });
  await writeObjects(repo.storage, [...backup.parts, backup.manifest, backup.backupJson]);
  const handler = validate(repo.runtime());
  ran(await handler(await repo.event(backup.backupJson.key, 'finalized')));
  for (const part of backup.parts.slice(0, 2)) ran(await handler(await repo.event(part.key, 'finalized')));
  t.is((await repo.catalogue()).backups[backup.name].state, 'pending');
  t.is((await repo.catalogue()).backups[backup.name].awaiting?.seals.length, 3);
  ran(await handler(await repo.event(backup.parts[2].key, 'finalized')));
  const judged = (await repo.catalogue()).backups[backup.name];
  t.is(judged.state, 'valid', judged.problem);
  t.is(judged.awaiting, undefined);
  t.deepEqual(await repo.alerts.quiet(), []);
});
