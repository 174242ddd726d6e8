/**
 * The catalogue store on both drivers: file:// and gs:// against the local
 * GCS emulator (keyless ADC through the metadata-server stand-in).
 */
import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { CatalogueBatcher, readCatalogue, updateCatalogue, type CatalogueChange } from '../../../core/catalogue/store.ts';
import { emptyCatalogue, type Catalogue } from '../../../core/catalogue/types.ts';
import { PreconditionFailedError } from '../../../core/errors.ts';
import { CATALOGUE_KEY } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { readSmallObject, writeSmallObject } from '../../../core/storage/objects.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';

let stack: LocalStack;
let counter = 0;
const dirs: string[] = [];

test.before(async () => {
  // A short per-object interval: concurrent writers meet 429 rateLimitExceeded as they would on Google, without the test taking a second per write.
  stack = await startLocalStack({ agentRoles: ['roles/storage.objectAdmin'], objectRateLimitMs: 100 });
  adoptStackEnv(stack);
});
test.after.always(async () => {
  await stack?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const drivers: { name: string; open: () => Promise<Storage> }[] = [
  {
    name: 'file',
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'gcwal-catalogue-'));
      dirs.push(dir);
      const storage = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
      await storage.createRoot();
      return storage;
    },
  },
  { name: 'gcs', open: async () => new GcsStorage(`gs://${stack.bucket}/catalogue-${++counter}`, { endpoint: stack.emulator.url, retries: 2 }) },
];

const NOW = new Date('2026-03-01T12:00:00.000Z');
const now = () => NOW;

/** A change that records `name` as a pending WAL file (returns a new catalogue). */
function addWal(name: string): CatalogueChange {
  return (c) => ({ ...c, wal: { ...c.wal, [name]: { name, generation: '1', size: 1, created: NOW.toISOString(), state: 'pending' } } });
}

/** The same, by modifying its argument. */
function addWalInPlace(name: string): CatalogueChange {
  return (c) => {
    c.wal[name] = { name, generation: '1', size: 1, created: NOW.toISOString(), state: 'pending' };
    return c;
  };
}

function segment(i: number): string {
  return `00000001000000000000${i.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The driver, counting catalogue writes and optionally holding each one until `gate` opens. */
function counting(inner: Storage, hold?: { started: () => void; gate: Promise<void> }): Storage & { writes: number } {
  const wrapped = {
    writes: 0,
    url: inner.url,
    stat: inner.stat.bind(inner),
    read: inner.read.bind(inner),
    list: inner.list.bind(inner),
    delete: inner.delete.bind(inner),
    write: async (key: string, source: Parameters<Storage['write']>[1], options: Parameters<Storage['write']>[2]) => {
      if (key === CATALOGUE_KEY) {
        wrapped.writes++;
        if (hold && wrapped.writes === 1) {
          hold.started();
          await hold.gate;
        }
      }
      return inner.write(key, source, options);
    },
  };
  return wrapped;
}

for (const { name, open } of drivers) {
  test(`${name}: a missing catalogue reads as empty with generation 0`, async (t) => {
    const s = await open();
    t.deepEqual(await readCatalogue(s, { now }), { catalogue: emptyCatalogue(NOW), generation: '0' });
  });

  test(`${name}: the first update creates the catalogue as gzipped json with codec gzip`, async (t) => {
    const s = await open();
    const result = await updateCatalogue(s, addWal(segment(1)), { now });
    t.deepEqual(result.previous, emptyCatalogue(NOW));
    t.deepEqual(Object.keys(result.catalogue.wal), [segment(1)]);
    t.is(result.catalogue.updated, NOW.toISOString());
    const info = await s.stat(CATALOGUE_KEY);
    t.is(info?.generation, result.generation);
    t.deepEqual(info?.metadata, { 'gcwal-codec': 'gzip' });
    const stored = await readSmallObject(s, CATALOGUE_KEY);
    t.deepEqual([stored[0], stored[1]], [0x1f, 0x8b], 'stored gzipped');
    t.deepEqual(JSON.parse(gunzipSync(stored).toString()), result.catalogue);
    t.deepEqual(await readCatalogue(s), { catalogue: result.catalogue, generation: result.generation });
  });

  test(`${name}: an update builds on the live catalogue and reports what it replaced`, async (t) => {
    const s = await open();
    const first = await updateCatalogue(s, addWal(segment(1)), { now });
    const later = new Date(NOW.getTime() + 60_000);
    const second = await updateCatalogue(s, addWalInPlace(segment(2)), { now: () => later });
    t.deepEqual(second.previous, first.catalogue);
    t.deepEqual(Object.keys(second.catalogue.wal).sort(), [segment(1), segment(2)]);
    t.is(second.catalogue.updated, later.toISOString());
    t.true(BigInt(second.generation) > BigInt(first.generation));
  });

  test(`${name}: 50 concurrent updates each adding one key all land`, async (t) => {
    const s = counting(await open());
    const names = Array.from({ length: 50 }, (_, i) => segment(i));
    // A change runs once per attempt: count them.
    const attempts = names.map(() => 0);
    const counted =
      (i: number, change: CatalogueChange): CatalogueChange =>
      (c) => {
        attempts[i]++;
        return change(c);
      };
    const results = await Promise.all(names.map((n, i) => updateCatalogue(s, counted(i, i % 2 ? addWal(n) : addWalInPlace(n)), { now })));
    for (const [i, r] of results.entries()) t.truthy(r.catalogue.wal[names[i]]);
    t.is(new Set(results.map((r) => r.generation)).size, 50);
    const { catalogue } = await readCatalogue(s);
    t.deepEqual(Object.keys(catalogue.wal).sort(), names);
    t.log(`${s.writes} writes for 50 updates, at most ${Math.max(...attempts)} attempts for one`);
  });

  test(`${name}: a change that alters nothing writes nothing`, async (t) => {
    const s = counting(await open());
    const first = await updateCatalogue(s, addWal(segment(1)), { now });
    const later = new Date(NOW.getTime() + 60_000);
    for (const change of [(c: Catalogue) => c, addWal(segment(1)), (c: Catalogue) => ({ ...c, updated: later.toISOString() })]) {
      const again = await updateCatalogue(s, change, { now: () => later });
      t.is(again.generation, first.generation);
    }
    t.is(s.writes, 1);
    t.is((await s.stat(CATALOGUE_KEY))?.generation, first.generation);
  });

  test(`${name}: the batcher commits changes submitted together in one write`, async (t) => {
    const s = counting(await open());
    const batcher = new CatalogueBatcher(s, { now });
    const names = Array.from({ length: 20 }, (_, i) => segment(i));
    const results = await Promise.all(names.map((n) => batcher.submit(addWal(n))));
    t.is(s.writes, 1);
    t.is(new Set(results.map((r) => r.generation)).size, 1);
    t.deepEqual(Object.keys((await readCatalogue(s)).catalogue.wal).sort(), names);
  });

  test(`${name}: changes submitted while a write is in flight share the next write`, async (t) => {
    let open1!: () => void;
    let started!: () => void;
    const writing = new Promise<void>((resolve) => (started = resolve));
    const s = counting(await open(), { started, gate: new Promise<void>((resolve) => (open1 = resolve)) });
    const batcher = new CatalogueBatcher(s, { now, windowMs: 10 });
    const first = batcher.submit(addWal(segment(0)));
    await writing;
    const rest = Array.from({ length: 10 }, (_, i) => batcher.submit(addWal(segment(i + 1))));
    // Longer than the window: they still wait for the write in flight.
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.is(s.writes, 1);
    open1();
    const [a, ...others] = await Promise.all([first, ...rest]);
    t.is(s.writes, 2);
    t.is(new Set(others.map((r) => r.generation)).size, 1);
    t.not(others[0].generation, a.generation);
    t.is(Object.keys((await readCatalogue(s)).catalogue.wal).length, 11);
  });

  test(`${name}: a change that throws fails alone and the rest of its batch is committed`, async (t) => {
    const s = counting(await open());
    const batcher = new CatalogueBatcher(s, { now });
    const boom = new Error('bad event');
    const [good1, bad, good2] = await Promise.allSettled([
      batcher.submit(addWal(segment(1))),
      batcher.submit(() => {
        throw boom;
      }),
      batcher.submit(addWal(segment(2))),
    ]);
    t.is(good1.status, 'fulfilled');
    t.is(good2.status, 'fulfilled');
    t.is(bad.status === 'rejected' && bad.reason, boom);
    t.is(s.writes, 1);
    t.deepEqual(Object.keys((await readCatalogue(s)).catalogue.wal).sort(), [segment(1), segment(2)]);
  });

  test(`${name}: flush commits at once and batchers of different processes do not lose each other's changes`, async (t) => {
    const s = await open();
    const batchers = [new CatalogueBatcher(s, { now, windowMs: 600_000 }), new CatalogueBatcher(s, { now, windowMs: 600_000 })];
    const pending = Array.from({ length: 10 }, (_, i) => batchers[i % 2].submit(addWal(segment(i))));
    const started = Date.now();
    await Promise.all(batchers.map((b) => b.flush()));
    await Promise.all(pending);
    t.true(Date.now() - started < 60_000, 'flush did not wait for the 10-minute window');
    t.is(Object.keys((await readCatalogue(s)).catalogue.wal).length, 10);
  });

  const corrupt: [string, string][] = [
    ['text that is not json', 'not json{'],
    ['a json array', '[]'],
    ['another format', '{"format":3,"wal":{}}'],
    ['a map of the wrong type', '{"format":1,"updated":"x","wal":[],"parts":{},"backups":{},"tombstones":{},"alerts":{}}'],
  ];
  for (const [what, body] of corrupt) {
    test(`${name}: a catalogue holding ${what} is reported as corrupt and left as it is`, async (t) => {
      const s = counting(await open());
      const info = await writeSmallObject(s, CATALOGUE_KEY, body);
      const readErr = await t.throwsAsync(readCatalogue(s));
      t.is((readErr as { code?: string }).code, 'corrupt');
      t.regex(readErr!.message, /^catalogue \S+catalogue\/catalogue\.json /);
      const updateErr = await t.throwsAsync(updateCatalogue(s, addWal(segment(1)), { now }));
      t.is((updateErr as { code?: string }).code, 'corrupt');
      t.is(s.writes, 1);
      t.is((await s.stat(CATALOGUE_KEY))?.generation, info.generation);
      t.is((await readSmallObject(s, CATALOGUE_KEY)).toString(), body);
    });
  }

  test(`${name}: an update that keeps losing gives up after maxAttempts with a transient error`, async (t) => {
    const inner = await open();
    let writes = 0;
    const s: Storage = {
      ...counting(inner),
      write: async (key, source) => {
        writes++;
        source.destroy();
        throw new PreconditionFailedError(key, '1');
      },
    };
    const err = await t.throwsAsync(updateCatalogue(s, addWal(segment(1)), { now, maxAttempts: 3 }));
    t.is((err as { code?: string }).code, 'storage');
    t.true((err as unknown as { transient: boolean }).transient);
    t.regex(err!.message, /gave up after 3 attempts/);
    t.is(writes, 3);
  });
}

test('file: a repository that cannot be read fails the read instead of reading as empty', async (t) => {
  const s = (await drivers[0].open()) as FileStorage;
  await updateCatalogue(s, addWal(segment(1)), { now });
  // The sidecar turned into a directory: an I/O error, not a missing object.
  const sidecar = join(s.root, '.gcwal', 'meta', 'catalogue', 'catalogue.json.json');
  await rm(sidecar);
  await mkdir(sidecar);
  const err = await t.throwsAsync(readCatalogue(s));
  t.is((err as { code?: string }).code, 'storage');
  const update = await t.throwsAsync(updateCatalogue(s, addWal(segment(2)), { now }));
  t.is((update as { code?: string }).code, 'storage');
});

test.serial('gcs: a repository that keeps failing fails the read instead of reading as empty', async (t) => {
  const prefix = `failing-${++counter}`;
  // Every request for this prefix answers 503, after the client's own retries too.
  stack.emulator.setFaults({ rate: 1, kinds: ['503'], match: (_method, path) => path.includes(prefix) });
  t.teardown(() => stack.emulator.setFaults(undefined));
  const s = new GcsStorage(`gs://${stack.bucket}/${prefix}`, { endpoint: stack.emulator.url, retries: 0 });
  const err = await t.throwsAsync(readCatalogue(s));
  t.is((err as { code?: string }).code, 'storage');
  const update = await t.throwsAsync(updateCatalogue(s, addWal(segment(1)), { now }));
  t.is((update as { code?: string }).code, 'storage');
});

test("gcs: an update refused with 429 for the object's write rate waits and lands, even when the driver does not retry", async (t) => {
  const storage = new GcsStorage(`gs://${stack.bucket}/catalogue-${++counter}`, { endpoint: stack.emulator.url, retries: 0 });
  const first = await updateCatalogue(storage, addWal(segment(1)), { now });
  // Within the emulator's interval of the first write: Cloud Storage answers 429 rateLimitExceeded.
  const second = await updateCatalogue(storage, addWal(segment(2)), { now });
  t.true(BigInt(second.generation) > BigInt(first.generation));
  const { catalogue } = await readCatalogue(storage);
  t.deepEqual(Object.keys(catalogue.wal).sort(), [segment(1), segment(2)]);
});

test('file: a catalogue in the format before runs is converted on first use: valid segments folded, their tombstones ranged, the rest kept', async (t) => {
  const s = await drivers[0].open();
  const SEG = 16 * 1024 * 1024;
  const entry = (n: number, state: 'valid' | 'pending') => ({
    name: segment(n),
    generation: String(100 + n),
    size: 10,
    created: new Date(NOW.getTime() - (100 - n) * 60_000).toISOString(),
    state,
    ...(state === 'valid' ? { validated: NOW.toISOString() } : {}),
  });
  const old = {
    format: 1,
    updated: NOW.toISOString(),
    walSegmentSize: SEG,
    wal: {
      ...Object.fromEntries([1, 2, 3, 4].map((n) => [segment(n), entry(n, 'valid')])),
      [segment(5)]: entry(5, 'pending'),
      '00000002.history': {
        name: '00000002.history',
        generation: '7',
        size: 40,
        created: NOW.toISOString(),
        state: 'valid',
        history: [{ parentTimeline: 1, switchLsn: '0/6000000' }],
      },
    },
    parts: {},
    backups: {},
    tombstones: { [`wal/${segment(0)}`]: { generation: '99', deleted: NOW.toISOString() } },
    alerts: {},
  };
  await writeSmallObject(s, CATALOGUE_KEY, JSON.stringify(old));
  // Reading converts in memory; the object changes with the first update, even one that changes nothing else.
  t.deepEqual(Object.keys((await readCatalogue(s)).catalogue.wal).sort(), [segment(5), '00000002.history']);
  const update = await updateCatalogue(s, (c) => c, { now });
  t.true(update.written);
  const stored = JSON.parse(gunzipSync(await readSmallObject(s, CATALOGUE_KEY)).toString('utf8'));
  t.is(stored.format, 2);
  t.deepEqual(Object.keys(stored.wal).sort(), [segment(5), '00000002.history']);
  t.deepEqual(
    stored.walRuns.map((r: { first: string; last: string; size: number }) => [r.first, r.last, r.size]),
    [[segment(1), segment(4), 40]],
  );
  t.deepEqual(stored.tombstones, {});
  t.deepEqual(stored.segmentTombstones, [{ timeline: 1, first: segment(0), last: segment(0), generation: '99', deleted: NOW.toISOString() }]);
  // Once converted, a change that alters nothing writes nothing.
  t.false((await updateCatalogue(s, (c) => c, { now })).written);
});
