import test from 'ava';
import { evaluateAlerts } from '../../../core/alerts/evaluate.ts';
import { applyCatalogueEvents } from '../../../core/catalogue/apply.ts';
import { RUN_SPAN_MS, walEntries, walEntry, walFileCount } from '../../../core/catalogue/runs.ts';
import { emptyCatalogue, type Catalogue, type CatalogueEvent } from '../../../core/catalogue/types.ts';
import { at, deleted, finalized, random, SEG, seg, shuffle, T0, validated } from './fixtures.ts';

const NOW = new Date(at(600));
const key = (n: number) => `wal/${seg(1, n)}`;
/** A catalogue that knows its segment size, as the pipeline's does after the first valid segment. */
const start = (): Catalogue => ({ ...emptyCatalogue(T0), walSegmentSize: SEG });
const apply = (events: CatalogueEvent[], c = start()) => applyCatalogueEvents(c, events, NOW);
/** Segment n arrives at minute n as generation 100+n, 1000 bytes, and is found valid a minute later. */
const arrivals = (from: number, to: number): CatalogueEvent[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i).flatMap((n) => [
    finalized(key(n), String(100 + n), at(n)),
    validated(key(n), String(100 + n), at(n + 1)),
  ]);

test('valid segments fold into one run and leave no entry behind', (t) => {
  const c = apply(arrivals(1, 5));
  t.deepEqual(c.wal, {});
  t.deepEqual(c.walRuns, [
    { timeline: 1, first: seg(1, 1), last: seg(1, 5), size: 5000, firstCreated: at(1), lastCreated: at(5), generation: '105', validated: at(6) },
  ]);
  t.is(walFileCount(c), 5);
  t.like(walEntry(c, seg(1, 3)), { name: seg(1, 3), state: 'valid', size: 1000, created: at(3) });
});

test('events that bring a folded segment nothing new leave the catalogue as it is', (t) => {
  const c = apply(arrivals(1, 5));
  t.is(apply([finalized(key(3), '103', at(3)), validated(key(3), '103', at(9)), finalized(key(2), '90', at(0))], c), c);
});

test('pending and corrupt segments stay entries, and the run resumes after them', (t) => {
  const c = apply([
    ...arrivals(1, 3),
    finalized(key(4), '104', at(4)),
    ...arrivals(5, 6),
    finalized(key(7), '107', at(7)),
    validated(key(7), '107', at(8), false),
  ]);
  t.deepEqual(Object.keys(c.wal).sort(), [seg(1, 4), seg(1, 7)]);
  t.deepEqual(
    c.walRuns.map((r) => [r.first, r.last]),
    [
      [seg(1, 1), seg(1, 3)],
      [seg(1, 5), seg(1, 6)],
    ],
  );
  // Once the pending one is found valid, the two runs become one.
  const later = apply([validated(key(4), '104', at(9))], c);
  t.deepEqual(
    later.walRuns.map((r) => [r.first, r.last]),
    [[seg(1, 1), seg(1, 6)]],
  );
});

test('a newer generation of a folded segment splits its run and is pending', (t) => {
  const c = apply([finalized(key(3), '500', at(20), 2000)], apply(arrivals(1, 5)));
  t.like(c.wal[seg(1, 3)], { generation: '500', size: 2000, state: 'pending' });
  t.deepEqual(
    c.walRuns.map((r) => [r.first, r.last, r.size]),
    [
      [seg(1, 1), seg(1, 2), 2000],
      [seg(1, 4), seg(1, 5), 2000],
    ],
  );
});

test('a corrupt verdict on a folded segment takes it out of its run and raises the alert', (t) => {
  const c = apply([validated(key(3), '103', at(30), false)], apply(arrivals(1, 5)));
  t.like(c.wal[seg(1, 3)], { generation: '103', state: 'corrupt', problem: 'crc32c mismatch' });
  t.deepEqual(
    c.walRuns.map((r) => [r.first, r.last]),
    [
      [seg(1, 1), seg(1, 2)],
      [seg(1, 4), seg(1, 5)],
    ],
  );
  const thresholds = { stallSeconds: 1e9, backupMaxAgeSeconds: 1e9, unvalidatedSeconds: 1e9, gapGraceSeconds: 0 };
  t.deepEqual(
    evaluateAlerts(c, NOW, thresholds).map((a) => a.id),
    [`corrupt-object:${key(3)}:103`],
  );
});

test('deleting folded segments shortens the run into one tombstone range, and a late finalize of a deleted generation stays deleted', (t) => {
  const pruned = apply(
    [1, 2, 3].map((n) => deleted(key(n), String(100 + n), at(100))),
    apply(arrivals(1, 5)),
  );
  t.deepEqual(
    pruned.walRuns.map((r) => [r.first, r.last]),
    [[seg(1, 4), seg(1, 5)]],
  );
  t.deepEqual(pruned.segmentTombstones, [{ timeline: 1, first: seg(1, 1), last: seg(1, 3), generation: '103', deleted: at(100) }]);
  t.deepEqual(pruned.tombstones, {});
  t.is(apply([finalized(key(2), '102', at(2)), validated(key(2), '102', at(3))], pruned), pruned);
  // A new object of a deleted name (a newer generation) is taken.
  t.like(apply([finalized(key(2), '900', at(200))], pruned).wal[seg(1, 2)], { generation: '900', state: 'pending' });
});

test('a run spans at most RUN_SPAN_MS of creation times', (t) => {
  const hour = RUN_SPAN_MS / 60_000;
  const events = [0, 1, 2, 3].flatMap((i) => {
    const n = 1 + i;
    const minute = i * (hour / 2 + 1);
    return [finalized(key(n), String(100 + n), at(minute)), validated(key(n), String(100 + n), at(minute + 1))];
  });
  const c = apply(events);
  t.deepEqual(
    c.walRuns.map((r) => [r.first, r.last]),
    [
      [seg(1, 1), seg(1, 2)],
      [seg(1, 3), seg(1, 4)],
    ],
  );
});

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`folding changes no WAL file's state, whatever the order and batching of event set ${seed}`, (t) => {
    const rnd = random(seed);
    const events: CatalogueEvent[] = [];
    for (let n = 1; n <= 40; n++) {
      const generation = String(100 + n);
      if (rnd() < 0.9) events.push(finalized(key(n), generation, at(n)));
      const r = rnd();
      if (r < 0.75) events.push(validated(key(n), generation, at(n + 1)));
      else if (r < 0.8) events.push(validated(key(n), generation, at(n + 1), false));
      if (rnd() < 0.1) events.push(deleted(key(n), generation, at(n + 2)));
    }
    // The same events without a segment size fold nothing: the per-file reference.
    const reference = applyCatalogueEvents(emptyCatalogue(T0), events, NOW);
    const expected = Object.fromEntries(Object.values(reference.wal).map((e) => [e.name, e.state]));
    for (let round = 0; round < 20; round++) {
      const order = shuffle(events, rnd);
      let c = start();
      for (let i = 0; i < order.length; ) {
        const n = 1 + Math.floor(rnd() * 8);
        c = applyCatalogueEvents(c, order.slice(i, i + n), NOW);
        i += n;
      }
      const actual = Object.fromEntries([...walEntries(c)].map((e) => [e.name, e.state]));
      t.deepEqual(actual, expected, `order ${round} of seed ${seed}`);
      t.true(c.walRuns.length > 0);
    }
  });
}

test("a run keeps its segments' record facts: each restore point and the last transaction end stay with the segment they lie in", (t) => {
  const lsn = (n: number) => `0/${(n * 0x1000000 + 0x100).toString(16).toUpperCase()}`;
  const records = (n: number) => ({
    firstXactTime: `2024-05-01T00:0${n}:00.000001Z`,
    lastXactTime: `2024-05-01T00:0${n}:30.000001Z`,
    lastXactLsn: lsn(n),
    restorePoints: n === 2 ? [{ name: 'before-upgrade', time: '2024-05-01T00:02:10.000000Z', lsn: lsn(2) }] : [],
  });
  const events = [1, 2, 3].flatMap((n) => [
    finalized(key(n), String(100 + n), at(n)),
    validated(key(n), String(100 + n), at(n + 1), true, { records: records(n) }),
  ]);
  const c = apply(events);
  t.deepEqual(c.wal, {});
  t.like(c.walRuns[0].records, {
    firstXactTime: records(1).firstXactTime,
    lastXactTime: records(3).lastXactTime,
    lastXactLsn: lsn(3),
    restorePoints: records(2).restorePoints,
  });
  t.deepEqual(walEntry(c, seg(1, 2))!.records, { restorePoints: records(2).restorePoints });
  t.deepEqual(walEntry(c, seg(1, 3))!.records, { lastXactTime: records(3).lastXactTime, lastXactLsn: lsn(3), restorePoints: [] });
  // Split off the first segment: the rest keeps both.
  const split = apply([deleted(key(1), '101', at(50))], c);
  t.like(split.walRuns[0].records, { lastXactTime: records(3).lastXactTime, restorePoints: records(2).restorePoints });
  // Split off the last: the part before no longer knows its own last transaction end, so it claims none.
  t.is(apply([deleted(key(3), '103', at(50))], c).walRuns[0].records, undefined);
});
