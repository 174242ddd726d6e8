import test from 'ava';
import { deferUntil, MAX_DEFER_MS, planFetches, type PrefetchState } from '../../../agent/wal/prefetch-plan.ts';

const MiB = 1024 * 1024;
const settings = { depth: 4, concurrency: 2, spoolBytes: 512 * MiB, segmentSize: 16 * MiB };
const seg = (tli: number, n: number) => `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
function state(over: Partial<PrefetchState> = {}): PrefetchState {
  return { timeline: 1, cursor: 10n, spooled: new Map(), inFlight: new Set(), missing: new Map(), failed: new Map(), ...over };
}

test('the segments after the cursor on its timeline are fetched, as many as there are slots', (t) => {
  t.deepEqual(planFetches(state(), settings, 0), [seg(1, 11), seg(1, 12)]);
  t.deepEqual(planFetches(state({ timeline: 2 }), { ...settings, concurrency: 8 }, 0), [seg(2, 11), seg(2, 12), seg(2, 13), seg(2, 14)]);
});

test('spooled and in-flight segments are skipped, and in-flight ones take slots', (t) => {
  t.deepEqual(planFetches(state({ spooled: new Map([[seg(1, 11), 16 * MiB]]), inFlight: new Set([seg(1, 12)]) }), settings, 0), [seg(1, 13)]);
});

test('nothing is fetched past the depth or the spool size', (t) => {
  t.deepEqual(planFetches(state({ spooled: new Map([11, 12, 13, 14].map((n) => [seg(1, n), 16 * MiB])) }), settings, 0), []);
  t.deepEqual(planFetches(state(), { ...settings, spoolBytes: 16 * MiB }, 0), [seg(1, 11)]);
  t.deepEqual(planFetches(state({ inFlight: new Set([seg(1, 11)]) }), { ...settings, spoolBytes: 16 * MiB }, 0), []);
});

test('a missing segment is the end of the archive: nothing after it, and it is asked again only after its backoff', (t) => {
  const missing = new Map([[seg(1, 11), { until: 1000, count: 1 }]]);
  t.deepEqual(planFetches(state({ missing }), settings, 999), []);
  t.deepEqual(planFetches(state({ missing }), { ...settings, concurrency: 4 }, 1000), [seg(1, 11)]);
  const later = new Map([[seg(1, 13), { until: 1000, count: 1 }]]);
  t.deepEqual(planFetches(state({ missing: later }), { ...settings, concurrency: 4 }, 0), [seg(1, 11), seg(1, 12)]);
});

test('a failed segment waits for its backoff while later ones are fetched', (t) => {
  const failed = new Map([[seg(1, 11), { until: 1000, count: 2 }]]);
  t.deepEqual(planFetches(state({ failed }), settings, 0), [seg(1, 12), seg(1, 13)]);
  t.deepEqual(planFetches(state({ failed }), settings, 1000), [seg(1, 11), seg(1, 12)]);
});

test('the backoff doubles from half a second and stops growing', (t) => {
  t.is(deferUntil(0, 1), 500);
  t.is(deferUntil(0, 2), 1000);
  t.is(deferUntil(0, 30), MAX_DEFER_MS);
});
