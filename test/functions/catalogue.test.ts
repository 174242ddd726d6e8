/**
 * The catalogue function in-process on a gs:// repository, fed the storage
 * CloudEvents the local GCS emulator delivers, twice, late and out of order,
 * alongside the validate function; alerts read from gcloud's Pub/Sub
 * emulator by real subscribers.
 */
import test from 'ava';
import { readCatalogue } from '../../core/catalogue/store.ts';
import { walObjectKey } from '../../core/layout.ts';
import { makeCatalogueHandler } from '../../functions/catalogue.ts';
import type { Runtime } from '../../functions/lib/runtime.ts';
import { makeValidateHandler } from '../../functions/validate.ts';
import { makeWatchdogHandler } from '../../functions/watchdog.ts';
import { flipped, ran, schedulerEvent, startHarness, type Harness, type StorageCloudEvent, type TestRepo } from './harness.ts';
import { pushWal, startWalSource, type WalSource } from './wal-source.ts';
import { holdsWalGeneration, walEntries, walEntry } from '../../core/catalogue/runs.ts';

let h: Harness;
let wal: WalSource;
/** archived segments of the one cluster, oldest first */
let segments: string[];

test.before(async () => {
  [h, wal] = await Promise.all([startHarness(), startWalSource()]);
  await wal.produce(50);
  segments = (await wal.archived()).filter((n) => /^[0-9A-F]{24}$/.test(n));
});

test.after.always(async () => {
  await Promise.all([h?.close(), wal?.stop()]);
});

const catalogueFn = (rt: Runtime) => makeCatalogueHandler(() => rt);
const validateFn = (rt: Runtime) => makeValidateHandler(() => rt);

/** Push `names` with the agent's wal-push; resolves with each one's finalize event, in order. */
async function pushAll(repo: TestRepo, names: string[]): Promise<StorageCloudEvent[]> {
  const events: StorageCloudEvent[] = [];
  for (const name of names) {
    const info = await pushWal(repo.storage, wal, name);
    events.push(await repo.event(walObjectKey(name), 'finalized', info.generation));
  }
  return events;
}

test('the same finalize event delivered twice records the object once', async (t) => {
  const repo = await h.repo(t);
  const [event] = await pushAll(repo, [segments[0]]);
  const first = await catalogueFn(repo.runtime())(event);
  const before = await readCatalogue(repo.storage);
  const second = await catalogueFn(repo.runtime())(structuredClone(event));
  const after = await readCatalogue(repo.storage);

  t.like(first, { status: 'recorded', changed: true, event: { type: 'finalized', key: walObjectKey(segments[0]), generation: event.data.generation } });
  t.like(second, { status: 'recorded', changed: false });
  t.is(after.generation, before.generation, 'nothing was written the second time');
  t.deepEqual(Object.keys(after.catalogue.wal), [segments[0]]);
  t.like(walEntry(after.catalogue, segments[0]), {
    generation: event.data.generation,
    size: Number(event.data.size),
    created: event.data.timeCreated,
    state: 'pending',
  });
  t.is(after.catalogue.lastWalArrival, event.data.timeCreated as string);
  t.deepEqual(await repo.alerts.quiet(), []);
});

test('a delete delivered before its finalize keeps the object out of the catalogue', async (t) => {
  const repo = await h.repo(t);
  const [finalized] = await pushAll(repo, [segments[1]]);
  await repo.storage.delete(walObjectKey(segments[1]));
  const deleted = await repo.event(walObjectKey(segments[1]), 'deleted', finalized.data.generation);

  t.like(await catalogueFn(repo.runtime())(deleted), { status: 'recorded', event: { type: 'deleted' } });
  t.like(await catalogueFn(repo.runtime())(finalized), { status: 'recorded' });
  const catalogue = await repo.catalogue();
  t.deepEqual(catalogue.wal, {});
  t.like(catalogue.tombstones[walObjectKey(segments[1])], { generation: finalized.data.generation });
});

test('a verdict that lands before the finalize keeps its state when the finalize arrives', async (t) => {
  const repo = await h.repo(t);
  const [event] = await pushAll(repo, [segments[2]]);
  t.like(await validateFn(repo.runtime())(event), { status: 'validated', result: { ok: true } });
  const validated = await readCatalogue(repo.storage);
  t.like(await catalogueFn(repo.runtime())(structuredClone(event)), { status: 'recorded', changed: false });
  const after = await readCatalogue(repo.storage);
  t.is(after.generation, validated.generation);
  t.like(walEntry(after.catalogue, segments[2]), { generation: event.data.generation, state: 'valid', size: Number(event.data.size) });
});

test('a late finalize of a replaced generation does not bring it back, whatever the order', async (t) => {
  const repo = await h.repo(t);
  const name = segments[3];
  const [old] = await pushAll(repo, [name]);
  await repo.storage.delete(walObjectKey(name));
  const oldDeleted = await repo.event(walObjectKey(name), 'deleted', old.data.generation);
  const [current] = await pushAll(repo, [name]);
  const all = [old, oldDeleted, current];
  // Every order of the three events ends in the same catalogue.
  const orders = [
    [0, 1, 2],
    [2, 1, 0],
    [2, 0, 1],
    [1, 2, 0],
    [0, 2, 1],
    [1, 0, 2],
  ];
  const results: unknown[] = [];
  for (const order of orders) {
    const r = await h.repo(t);
    const rt = r.runtime();
    for (const i of order) {
      const e = structuredClone(all[i]);
      e.data.name = `${r.prefix}/${walObjectKey(name)}`;
      await catalogueFn(rt)(e);
    }
    const c = await r.catalogue();
    t.like(walEntry(c, name), { generation: current.data.generation, state: 'pending' }, `order ${order}`);
    t.like(c.tombstones[walObjectKey(name)], { generation: old.data.generation }, `order ${order}`);
    results.push({ wal: c.wal, tombstones: Object.keys(c.tombstones), lastWalArrival: c.lastWalArrival });
  }
  for (const r of results) t.deepEqual(r, results[0]);
});

test("the catalogue's own writes and objects outside the repository are ignored", async (t) => {
  const repo = await h.repo(t);
  const [event] = await pushAll(repo, [segments[4]]);
  const rt = repo.runtime();
  await catalogueFn(rt)(event);
  const own = await repo.event('catalogue/catalogue.json', 'finalized');
  t.deepEqual(await catalogueFn(rt)(own), { status: 'ignored', reason: 'catalogue/catalogue.json is not catalogued' });
  t.deepEqual(await catalogueFn(rt)(await repo.event('gcwal.json', 'finalized')), { status: 'ignored', reason: 'gcwal.json is not catalogued' });
  const elsewhere = structuredClone(event);
  elsewhere.data.name = `other-${repo.prefix}/${walObjectKey(segments[5])}`;
  t.deepEqual(await catalogueFn(rt)(elsewhere), { status: 'ignored', reason: 'not an object event in the repository' });
  t.deepEqual(Object.keys((await repo.catalogue()).wal), [segments[4]]);
});

test('an event whose object arrives as JSON text is catalogued like any other', async (t) => {
  const repo = await h.repo(t);
  const [event] = await pushAll(repo, [segments[6]]);
  // A body functions-framework did not parse (not sent as application/json) reaches the handler as text.
  const outcome = await catalogueFn(repo.runtime())({ ...event, data: JSON.stringify(event.data) });
  t.like(outcome, { status: 'recorded', changed: true, event: { type: 'finalized', key: walObjectKey(segments[6]), generation: event.data.generation } });
  t.like(walEntry(await repo.catalogue(), segments[6]), { generation: event.data.generation, state: 'pending' });
});

test('50 concurrent events of one cluster, with duplicates, across instances end in a complete, consistent catalogue', async (t) => {
  const repo = await h.repo(t);
  const names = segments.slice(0, 50);
  t.is(names.length, 50);
  // Two damaged objects among them: bytes flipped, and a segment stored under the next one's name.
  const [flippedName, renamedName] = [names[20], names[35]];
  const intact = names.filter((n) => n !== flippedName && n !== renamedName);
  const events = await pushAll(repo, intact);
  const scratch = await h.repo(t);
  await pushAll(scratch, [flippedName, names[34]]);
  const damaged: Record<string, string> = {};
  {
    const { bytes, metadata } = await scratch.stored(walObjectKey(flippedName));
    damaged[flippedName] = (await repo.put(walObjectKey(flippedName), flipped(bytes, 100), metadata)).generation;
    const other = await scratch.stored(walObjectKey(names[34]));
    damaged[renamedName] = (await repo.put(walObjectKey(renamedName), other.bytes, other.metadata)).generation;
  }
  for (const [name, generation] of Object.entries(damaged)) events.push(await repo.event(walObjectKey(name), 'finalized', generation));

  // Four instances of each function; every finalize goes to both functions,
  // the first ten twice; all at once.
  const catalogues = Array.from({ length: 4 }, () => catalogueFn(repo.runtime()));
  const validates = Array.from({ length: 4 }, () => validateFn(repo.runtime()));
  const deliveries: Promise<unknown>[] = [];
  events.forEach((e, i) => {
    deliveries.push(catalogues[i % 4](structuredClone(e)), validates[(i + 1) % 4](structuredClone(e)));
    if (i < 10) deliveries.push(catalogues[(i + 2) % 4](structuredClone(e)), validates[(i + 3) % 4](structuredClone(e)));
  });
  const settled = await Promise.allSettled(deliveries);
  t.deepEqual(
    settled.filter((s) => s.status === 'rejected'),
    [],
  );

  const catalogue = await repo.catalogue();
  t.deepEqual([...walEntries(catalogue)].map((e) => e.name).sort(), [...names].sort());
  let size = 0;
  for (const name of names) {
    const info = (await repo.storage.stat(walObjectKey(name)))!;
    size += info.size;
    const expected = damaged[name] ? 'corrupt' : 'valid';
    t.true(holdsWalGeneration(catalogue, name, info.generation), name);
    t.is(walEntry(catalogue, name)!.state, expected, name);
    // A folded segment's size and creation time are its run's: exact at its ends, the sizes in total.
    if (!damaged[name])
      t.true(
        catalogue.walRuns.some(
          (r) =>
            (r.first === name && r.firstCreated === info.created.toISOString()) ||
            (r.last === name && r.lastCreated === info.created.toISOString()) ||
            (r.first < name && name < r.last),
        ),
        name,
      );
  }
  t.is(catalogue.walRuns.reduce((n, r) => n + r.size, 0) + Object.values(catalogue.wal).reduce((n, e) => n + e.size, 0), size);
  t.is(
    catalogue.lastWalArrival,
    events
      .map((e) => e.data.timeCreated as string)
      .sort()
      .at(-1),
  );
  t.is(catalogue.systemIdentifier, wal.systemIdentifier);
  t.deepEqual(catalogue.tombstones, {});
  t.deepEqual(catalogue.parts, {});
  const ids = Object.entries(damaged)
    .map(([name, generation]) => `corrupt-object:${walObjectKey(name)}:${generation}`)
    .sort();
  t.deepEqual(Object.keys(catalogue.alerts).sort(), ids);
  t.is(catalogue.outbox, undefined);

  // One announcement per incident, whichever instance committed it.
  const alerts = await repo.alerts.quiet(2000);
  t.deepEqual(
    alerts.map((m) => `${m.id} ${m.status}`).sort(),
    ids.map((id) => `${id} open`),
  );
  const validated = await repo.events.waitFor((ms) => (ms.length >= 60 ? ms : undefined), 'every validated message');
  t.is(validated.length, 60);
  t.is(validated.filter((m) => !m.ok).length, 2);
});

test("a segment deleted behind the pipeline's back becomes a gap once the grace has passed, and archiving it again resolves it", async (t) => {
  let clock = () => new Date();
  const repo = await h.repo(t);
  const rt = () => repo.runtime({ now: () => clock() });
  const names = segments.slice(10, 15);
  for (const e of await pushAll(repo, names)) await validateFn(rt())(e);
  const missing = names[2];
  const first = await repo.catalogue();
  const generation = (await repo.storage.stat(walObjectKey(missing)))!.generation;
  t.true(holdsWalGeneration(first, missing, generation));

  await repo.storage.delete(walObjectKey(missing));
  await catalogueFn(rt())(await repo.event(walObjectKey(missing), 'deleted', generation));
  t.deepEqual((await repo.catalogue()).alerts, {}, 'a fresh hole is given the grace period');

  // Six minutes later (grace: 5), the watchdog sees the hole has not closed.
  const later = Date.now() + 6 * 60_000;
  clock = () => new Date(later);
  const outcome = ran(await makeWatchdogHandler(rt)(schedulerEvent('gcwal-watchdog')));
  const id = `wal-gap:1:${missing}`;
  t.deepEqual(
    outcome.open.map((a) => a.id),
    [id],
  );
  const open = await repo.alerts.waitFor((ms) => ms.find((m) => m.id === id), 'the gap alert');
  t.like(open, {
    status: 'open',
    kind: 'wal-gap',
    severity: 'CRITICAL',
    cluster: wal.systemIdentifier,
    details: { timeline: 1, after: names[1], missing, count: 1, before: names[3] },
  });
  t.regex(open.summary, new RegExp(`wal segment ${missing} is missing from the archive on timeline 1`));

  // The agent archives it again (from pg_wal or a replica): the gap closes.
  const [again] = await pushAll(repo, [missing]);
  await validateFn(rt())(again);
  const resolved = await repo.alerts.waitFor((ms) => ms.find((m) => m.id === id && m.status === 'resolved'), 'the resolution');
  t.like(resolved, { kind: 'wal-gap', cluster: wal.systemIdentifier });
  const catalogue = await repo.catalogue();
  t.deepEqual(catalogue.alerts, {});
  t.like(walEntry(catalogue, missing), { generation: again.data.generation, state: 'valid' });
  t.deepEqual(
    (await repo.alerts.quiet()).map((m) => `${m.id} ${m.status}`),
    [`${id} open`, `${id} resolved`],
  );
});
