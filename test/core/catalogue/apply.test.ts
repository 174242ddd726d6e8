import test from 'ava';
import { applyCatalogueEvents, catalogueEventFromObjectResource, isPlaceholderBackup, TOMBSTONE_TTL_MS } from '../../../core/catalogue/apply.ts';
import { emptyCatalogue, type Catalogue, type CatalogueEvent } from '../../../core/catalogue/types.ts';
import { InvalidInputError } from '../../../core/errors.ts';
import { at, deepFreeze, deleted, finalized, random, seg, shuffle, summary, T0, validated } from './fixtures.ts';

const NOW = new Date(at(60));
const S1 = seg(1, 1);
const W1 = `wal/${S1}`;
const PART = 'backups/base_000000010000000000000002/part_00000.tar';
const META = 'backups/base_000000010000000000000002/backup.json';

function apply(events: CatalogueEvent[], start: Catalogue = emptyCatalogue(T0)): Catalogue {
  return applyCatalogueEvents(start, events, NOW);
}

// [title, events, what catalogue.wal[S1] must be (undefined = absent)]
const walCases: [string, CatalogueEvent[], object | undefined][] = [
  ['a finalized segment is added pending', [finalized(W1, '5', at(1))], { name: S1, generation: '5', size: 1000, created: at(1), state: 'pending' }],
  [
    'the same finalize twice adds it once',
    [finalized(W1, '5', at(1)), finalized(W1, '5', at(1))],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'pending' },
  ],
  [
    'a validation marks that generation valid',
    [finalized(W1, '5', at(1)), validated(W1, '5', at(2))],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'valid', validated: at(2) },
  ],
  [
    'a duplicate finalize keeps the validation',
    [finalized(W1, '5', at(1)), validated(W1, '5', at(2)), finalized(W1, '5', at(1))],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'valid', validated: at(2) },
  ],
  [
    'a validation seen before the finalize creates the entry, the finalize fills in size and time',
    [validated(W1, '5', at(2), false), finalized(W1, '5', at(1))],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'corrupt', problem: 'crc32c mismatch', validated: at(2) },
  ],
  [
    'a validation alone dates the entry by the validation',
    [validated(W1, '5', at(2))],
    { name: S1, generation: '5', size: 0, created: at(2), state: 'valid', validated: at(2) },
  ],
  [
    'the later of two validations wins',
    [finalized(W1, '5', at(1)), validated(W1, '5', at(3)), validated(W1, '5', at(2), false)],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'valid', validated: at(3) },
  ],
  [
    'corrupt wins over valid at the same time',
    [finalized(W1, '5', at(1)), validated(W1, '5', at(2)), validated(W1, '5', at(2), false)],
    { name: S1, generation: '5', size: 1000, created: at(1), state: 'corrupt', problem: 'crc32c mismatch', validated: at(2) },
  ],
  [
    'a newer generation replaces the entry as pending',
    [finalized(W1, '9', at(1)), validated(W1, '9', at(2)), finalized(W1, '10', at(3), 2000)],
    { name: S1, generation: '10', size: 2000, created: at(3), state: 'pending' },
  ],
  [
    'an older generation is ignored, comparing numerically',
    [finalized(W1, '10', at(3)), finalized(W1, '9', at(1), 5)],
    { name: S1, generation: '10', size: 1000, created: at(3), state: 'pending' },
  ],
  [
    'a validation of an older generation is ignored',
    [finalized(W1, '10', at(3)), validated(W1, '9', at(4), false)],
    { name: S1, generation: '10', size: 1000, created: at(3), state: 'pending' },
  ],
  ['a delete removes the entry', [finalized(W1, '5', at(1)), deleted(W1, '5', at(5))], undefined],
  ['a late finalize of a deleted generation stays deleted', [deleted(W1, '5', at(5)), finalized(W1, '5', at(1))], undefined],
  ['a late validation of a deleted generation stays deleted', [deleted(W1, '5', at(5)), validated(W1, '5', at(6))], undefined],
  [
    'a delete of an older generation leaves the newer one',
    [finalized(W1, '12', at(3)), deleted(W1, '11', at(5))],
    { name: S1, generation: '12', size: 1000, created: at(3), state: 'pending' },
  ],
  [
    'a generation newer than the tombstone is added',
    [deleted(W1, '11', at(5)), finalized(W1, '12', at(6))],
    { name: S1, generation: '12', size: 1000, created: at(6), state: 'pending' },
  ],
];

for (const [title, events, expected] of walCases) {
  test(`applyCatalogueEvents: ${title}`, (t) => {
    t.deepEqual(apply(events).wal[S1], expected as never);
  });
}

test('applyCatalogueEvents: a delete leaves a tombstone with the newest generation', (t) => {
  const c = apply([deleted(W1, '5', at(5)), deleted(W1, '10', at(6)), deleted(W1, '9', at(7))]);
  t.deepEqual(c.tombstones, { [W1]: { generation: '10', deleted: at(6) } });
});

test('applyCatalogueEvents: lastWalArrival is the newest creation time of any wal object, comparing instants', (t) => {
  const c = apply([
    finalized(W1, '1', '2024-05-01T00:00:00.500Z'),
    finalized(`wal/${seg(1, 2)}`, '2', '2024-05-01T00:00:00Z'),
    finalized('wal/00000002.history', '3', '2024-04-30T00:00:00Z'),
  ]);
  t.is(c.lastWalArrival, '2024-05-01T00:00:00.500Z');
});

test('applyCatalogueEvents: parts are finalized, validated and deleted like segments', (t) => {
  let c = apply([finalized(PART, '7', at(1), 5000), validated(PART, '7', at(2), false)]);
  t.deepEqual(c.parts[PART], { key: PART, generation: '7', size: 5000, created: at(1), state: 'corrupt', problem: 'crc32c mismatch', validated: at(2) });
  c = apply([deleted(PART, '7', at(3))], c);
  t.deepEqual(c.parts, {});
  t.deepEqual(c.tombstones[PART], { generation: '7', deleted: at(3) });
});

test('applyCatalogueEvents: a validated backup.json creates the backup from its summary, a delete removes it', (t) => {
  const s = summary(1, 2, 3, at(10));
  t.deepEqual(apply([finalized(META, '4', at(10))]).backups, {}, 'a finalize of backup.json alone adds nothing');
  let c = apply([validated(META, '4', at(11), true, { backup: s })]);
  t.deepEqual(c.backups[s.name], { ...s, generation: '4', state: 'valid', validated: at(11) });
  c = apply([deleted(META, '4', at(12))], c);
  t.deepEqual(c.backups, {});
  t.deepEqual(apply([deleted(META, '4', at(12)), validated(META, '4', at(11), true, { backup: s })]).backups, {}, 'a late validation stays deleted');
});

test('applyCatalogueEvents: an unreadable backup.json is recorded corrupt with placeholder fields, filled in once a summary arrives', (t) => {
  const s = summary(1, 2, 3, at(10));
  const bad = apply([validated(META, '4', at(11), false, { problem: 'backup.json is not valid json' })]);
  const b = bad.backups[s.name];
  t.is(b.state, 'corrupt');
  t.is(b.problem, 'backup.json is not valid json');
  t.true(isPlaceholderBackup(b));
  const filled = apply([validated(META, '4', at(9), true, { backup: s })], bad);
  t.deepEqual(filled.backups[s.name], { ...s, generation: '4', state: 'corrupt', problem: 'backup.json is not valid json', validated: at(11) });
  t.false(isPlaceholderBackup(filled.backups[s.name]));
});

test('applyCatalogueEvents: keys the catalogue does not track are ignored', (t) => {
  const start = emptyCatalogue(T0);
  const events = [
    finalized('gcwal.json', '1', at(1)),
    finalized('catalogue/catalogue.json', '2', at(1)),
    finalized('wal/000000010000000000000001.tmp', '3', at(1)),
    finalized('wal/000000000000000000000001', '3', at(1)),
    finalized('backups/base_000000010000000000000002/manifest.jsonl', '4', at(1)),
    finalized('backups/notabackup/part_00000.tar', '5', at(1)),
    validated('backups/base_000000010000000000000002/manifest.jsonl', '4', at(2)),
    finalized(W1, 'x12', at(1)),
    finalized(W1, '', at(1)),
  ];
  t.is(applyCatalogueEvents(start, events, NOW), start);
});

test('applyCatalogueEvents: a successful validation fills in the system identifier and segment size, a failed one does not', (t) => {
  const fail = apply([validated(W1, '1', at(1), false, { systemIdentifier: '42', walSegmentSize: 1024 * 1024 })]);
  t.is(fail.systemIdentifier, undefined);
  t.is(fail.walSegmentSize, undefined);
  const ok = apply([validated(W1, '1', at(1), true, { systemIdentifier: '7300000000000000001', walSegmentSize: 16 * 1024 * 1024 })]);
  t.is(ok.systemIdentifier, '7300000000000000001');
  t.is(ok.walSegmentSize, 16 * 1024 * 1024);
  t.is(applyCatalogueEvents(ok, [validated(W1, '1', at(1), true, { systemIdentifier: '7300000000000000001' })], NOW), ok);
});

test('applyCatalogueEvents: a validated history file keeps its lines', (t) => {
  const key = 'wal/00000002.history';
  const history = [{ parentTimeline: 1, switchLsn: '0/5000000' }];
  const c = apply([finalized(key, '3', at(1)), validated(key, '3', at(2), true, { history })]);
  t.deepEqual(c.wal['00000002.history'].history, history);
  t.is(
    apply([finalized(key, '3', at(1)), validated(key, '3', at(2), false, { history })]).wal['00000002.history'].history,
    undefined,
    'not from a failed validation',
  );
});

test('applyCatalogueEvents: a valid segment keeps what its records say (transaction end times, restore points), a corrupt one or another generation does not', (t) => {
  const key = `wal/${seg(1, 3)}`;
  const records = {
    firstXactTime: '2024-05-01T00:01:00.000001Z',
    lastXactTime: '2024-05-01T00:02:00.123456Z',
    lastXactLsn: '0/3000F00',
    restorePoints: [{ name: 'p', time: '2024-05-01T00:01:30.000000Z', lsn: '0/3000100' }],
  };
  const c = apply([
    finalized(key, '3', at(1)),
    validated(key, '3', at(2), true, { records: { ...records, records: 12, ending: 'switch', endLsn: '0/3000F60' } as never }),
  ]);
  t.deepEqual(c.wal[seg(1, 3)].records, records, 'only the fields restores need');
  t.is(apply([finalized(key, '3', at(1)), validated(key, '3', at(2), false, { records })]).wal[seg(1, 3)].records, undefined, 'not from a failed validation');
  t.is(apply([finalized(key, '4', at(1)), validated(key, '3', at(2), true, { records })]).wal[seg(1, 3)].records, undefined, 'not from another generation');
});

test('applyCatalogueEvents: tombstones older than a week are trimmed', (t) => {
  const old = new Date(NOW.getTime() - TOMBSTONE_TTL_MS - 1000).toISOString();
  const recent = new Date(NOW.getTime() - TOMBSTONE_TTL_MS + 1000).toISOString();
  const c = apply([deleted(W1, '1', old), deleted(`wal/${seg(1, 2)}`, '1', recent)]);
  t.deepEqual(Object.keys(c.tombstones), [`wal/${seg(1, 2)}`]);
  const later = applyCatalogueEvents(c, [], new Date(NOW.getTime() + 2000));
  t.deepEqual(later.tombstones, {});
  t.is(later.updated, new Date(NOW.getTime() + 2000).toISOString());
});

test('applyCatalogueEvents never modifies its input and returns it when nothing changes', (t) => {
  const start = deepFreeze(apply([finalized(W1, '5', at(1)), deleted(PART, '1', at(1))]));
  const copy = structuredClone(start);
  const events = deepFreeze([
    finalized(W1, '6', at(2)),
    validated(W1, '6', at(3)),
    deleted(PART, '2', at(4)),
    validated(META, '4', at(5), true, { backup: summary(1, 2, 3, at(4)) }),
  ]);
  const next = applyCatalogueEvents(start, events, NOW);
  t.deepEqual(start, copy);
  t.not(next, start);
  t.is(next.updated, NOW.toISOString());
  t.is(applyCatalogueEvents(next, events, new Date(at(90))), next);
});

/**
 * A realistic set of events for a repository: segments on two timelines,
 * some replaced by a newer generation (9 → 10, to catch lexical
 * comparisons), some deleted (with the delete sometimes covering only the
 * older generation), validations before and after finalizes, repeated
 * validations, duplicated deliveries, backup parts and backup.json.
 */
function scenario(rnd: () => number): CatalogueEvent[] {
  const events: CatalogueEvent[] = [];
  const minute = () => Math.floor(rnd() * 50);
  const keys = [
    ...Array.from({ length: 8 }, (_, i) => `wal/${seg(1, i + 1)}`),
    ...Array.from({ length: 4 }, (_, i) => `wal/${seg(2, i + 6)}`),
    'wal/00000002.history',
    `wal/${seg(1, 6)}.partial`,
    PART,
    'backups/base_000000010000000000000002/part_00001.tar',
  ];
  for (const key of keys) {
    const generations = rnd() < 0.3 ? ['9', '10'] : [String(100 + Math.floor(rnd() * 900))];
    for (const g of generations) {
      if (rnd() < 0.9) events.push(finalized(key, g, at(minute()), 1000 + Math.floor(rnd() * 10)));
      const validations = Math.floor(rnd() * 3);
      for (let v = 0; v < validations; v++) {
        events.push(
          validated(
            key,
            g,
            at(minute()),
            rnd() < 0.7,
            key.endsWith('.history')
              ? { history: [{ parentTimeline: 1, switchLsn: '0/6000000' }] }
              : { systemIdentifier: rnd() < 0.5 ? '7300000000000000001' : undefined },
          ),
        );
      }
    }
    const r = rnd();
    if (r < 0.2) events.push(deleted(key, generations.at(-1)!, at(minute())));
    else if (r < 0.3) events.push(deleted(key, generations[0], at(minute())));
  }
  const s = summary(1, 2, 3, at(20));
  events.push(validated(META, '77', at(minute()), rnd() < 0.8, rnd() < 0.7 ? { backup: s } : {}));
  if (rnd() < 0.5) events.push(validated(META, '77', at(minute()), rnd() < 0.8, { backup: s }));
  if (rnd() < 0.2) events.push(deleted(META, '77', at(minute())));
  // duplicated deliveries
  for (let i = 0; i < 6; i++) events.push(events[Math.floor(rnd() * events.length)]);
  return events;
}

/** What the event set alone says a wal entry or part must be (the specification, independent of order). */
function expectedEntry(events: CatalogueEvent[], key: string) {
  const mine = events.filter((e) => e.key === key);
  const tomb = mine.filter((e) => e.type === 'deleted').reduce((m, e) => (BigInt(e.generation) > m ? BigInt(e.generation) : m), -1n);
  const live = mine.filter((e) => e.type !== 'deleted').reduce((m, e) => (BigInt(e.generation) > m ? BigInt(e.generation) : m), -1n);
  if (live < 0n || live <= tomb) return undefined;
  const of = mine.filter((e) => e.type !== 'deleted' && BigInt(e.generation) === live);
  const fin = of.filter((e) => e.type === 'finalized') as Extract<CatalogueEvent, { type: 'finalized' }>[];
  const val = of.filter((e) => e.type === 'validated') as Extract<CatalogueEvent, { type: 'validated' }>[];
  const times = [...fin.map((e) => e.created), ...val.map((e) => e.time)].sort();
  const last = [...val].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : Number(b.ok) - Number(a.ok))).at(-1);
  return {
    generation: String(live),
    size: fin.length ? Math.max(...fin.map((e) => e.size)) : 0,
    created: times[0],
    state: last ? (last.ok ? 'valid' : 'corrupt') : 'pending',
  };
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
  test(`applyCatalogueEvents gives one catalogue for every order and batching of event set ${seed}, and matches what the events say`, (t) => {
    const rnd = random(seed);
    const events = scenario(rnd);
    const reference = apply(events);
    for (const key of new Set(events.map((e) => e.key))) {
      if (key === META) continue;
      const expected = expectedEntry(events, key);
      const name = key.startsWith('wal/') ? key.slice(4) : key;
      const actual = key.startsWith('wal/') ? reference.wal[name] : reference.parts[key];
      t.deepEqual(
        actual && { generation: actual.generation, size: actual.size, created: actual.created, state: actual.state },
        expected,
        `${key} (seed ${seed})`,
      );
    }
    for (let round = 0; round < 150; round++) {
      const order = shuffle(events, rnd);
      if (round % 2 === 0) {
        t.deepEqual(apply(order), reference, `permutation ${round} of seed ${seed}`);
      } else {
        // The same events across several updates, as concurrent functions apply them.
        let c = emptyCatalogue(T0);
        let i = 0;
        while (i < order.length) {
          const n = 1 + Math.floor(rnd() * 6);
          c = applyCatalogueEvents(c, order.slice(i, i + n), NOW);
          i += n;
        }
        t.deepEqual(c, reference, `batched permutation ${round} of seed ${seed}`);
      }
    }
    t.is(applyCatalogueEvents(reference, shuffle(events, rnd), NOW), reference, 'applying the events again changes nothing');
  });
}

// [title, type, resource, prefix, expected]
const resources: [string, string, Record<string, unknown>, string, CatalogueEvent | undefined][] = [
  [
    'a finalized segment under the prefix',
    'google.cloud.storage.object.v1.finalized',
    { name: `db1/wal/${S1}`, generation: '1714521600123456', size: '16777216', timeCreated: '2024-05-01T00:00:00.123Z' },
    'db1',
    finalized(W1, '1714521600123456', '2024-05-01T00:00:00.123Z', 16777216),
  ],
  [
    'a prefix given with slashes',
    'finalized',
    { name: `a/b/wal/${S1}`, generation: '2', size: '5', timeCreated: at(1) },
    '/a/b/',
    finalized(W1, '2', at(1), 5),
  ],
  ['a repository at the bucket root', 'finalized', { name: PART, generation: 3, size: 7, timeCreated: at(1) }, '', finalized(PART, '3', at(1), 7)],
  [
    'a deleted backup.json',
    'google.cloud.storage.object.v1.deleted',
    { name: `db1/${META}`, generation: '4', size: '100', timeCreated: at(1), timeDeleted: at(3) },
    'db1',
    deleted(META, '4', at(3)),
  ],
  [
    'a deleted object without timeDeleted takes the event time',
    'deleted',
    { name: `db1/${META}`, generation: '4', size: '100', timeCreated: at(1), updated: at(2) },
    'db1',
    deleted(META, '4', at(5)),
  ],
  ['an object of another repository', 'finalized', { name: `db2/wal/${S1}`, generation: '1', size: '1', timeCreated: at(1) }, 'db1', undefined],
  ['a prefix that only shares the start', 'finalized', { name: `db10/wal/${S1}`, generation: '1', size: '1', timeCreated: at(1) }, 'db1', undefined],
  ['the catalogue itself', 'finalized', { name: 'db1/catalogue/catalogue.json', generation: '1', size: '1', timeCreated: at(1) }, 'db1', undefined],
  ['the repository identity', 'finalized', { name: 'db1/gcwal.json', generation: '1', size: '1', timeCreated: at(1) }, 'db1', undefined],
  [
    'a metadata update',
    'google.cloud.storage.object.v1.metadataUpdated',
    { name: `db1/wal/${S1}`, generation: '1', size: '1', timeCreated: at(1) },
    'db1',
    undefined,
  ],
];

for (const [title, type, resource, prefix, expected] of resources) {
  test(`catalogueEventFromObjectResource reads ${title}`, (t) => {
    t.deepEqual(catalogueEventFromObjectResource(type, resource, prefix, at(5)), expected);
  });
}

test('catalogueEventFromObjectResource rejects a resource without name, generation or size', (t) => {
  for (const resource of [
    {},
    { name: `wal/${S1}`, size: '1', timeCreated: at(1) },
    { name: `wal/${S1}`, generation: '1.5', size: '1', timeCreated: at(1) },
    { name: `wal/${S1}`, generation: '1', timeCreated: at(1) },
    { name: `wal/${S1}`, generation: '1', size: '', timeCreated: at(1) },
  ]) {
    t.throws(
      () => catalogueEventFromObjectResource('finalized', resource, ''),
      { instanceOf: InvalidInputError, message: /^storage object event/ },
      JSON.stringify(resource),
    );
  }
});
