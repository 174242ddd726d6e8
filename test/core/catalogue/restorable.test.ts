import test from 'ava';
import { foldValidSegments } from '../../../core/catalogue/apply.ts';
import { recoverableWindows } from '../../../core/catalogue/derive.ts';
import { walEntries } from '../../../core/catalogue/runs.ts';
import { isoMicros, restorableRecords, windowRecords } from '../../../core/catalogue/restorable.ts';
import type { CatalogueWalRecords } from '../../../core/catalogue/types.ts';
import { at, backup, catalogueOf, lsnIn, SEG, seg, summary, walEntry } from './fixtures.ts';

/** Records of segment `n` with transaction ends at minutes `first`..`last` and the named points (at offset 0x100 + i). */
function recs(n: number, first?: number, last?: number, points: string[] = []): CatalogueWalRecords {
  return {
    ...(first !== undefined
      ? { firstXactTime: at(first).replace('Z', '123Z'), lastXactTime: at(last!).replace('Z', '456Z'), lastXactLsn: lsnIn(n, 0x800) }
      : {}),
    restorePoints: points.map((name, i) => ({ name, time: at(n).replace('Z', '000Z'), lsn: lsnIn(n, 0x100 + i) })),
  };
}

/** Segments 2–5 of timeline 1, each with records; a backup from 2 ending at 0/2000138. */
function archive(overrides: Record<number, Partial<Parameters<typeof walEntry>[3]> & { state?: 'valid' | 'pending' }> = {}) {
  const base: Record<number, CatalogueWalRecords> = {
    2: recs(2, 2, 3, ['early']),
    3: recs(3, 3, 4, ['load']),
    4: recs(4, 4, 6),
    5: recs(5, undefined, undefined, ['tail']),
  };
  const entries = [2, 3, 4, 5].map((n) => {
    const { state = 'valid', ...extra } = overrides[n] ?? {};
    return walEntry(seg(1, n), at(n), state, { records: base[n], ...extra });
  });
  return catalogueOf(entries, [backup(summary(1, 2, 2, at(2)))]);
}

const only = (c: ReturnType<typeof archive>) => windowRecords(c, recoverableWindows(c)[0]);

test('the last commit of the window is the latest transaction end its segments recorded, with its LSN and segment', (t) => {
  const r = only(archive());
  t.deepEqual(r.lastCommit, { time: at(6).replace('Z', '456Z'), lsn: lsnIn(4, 0x800), segment: seg(1, 4) });
  t.true(r.lastCommitCertain);
  t.true(r.complete);
});

test('restore points are those after the backup became consistent, in WAL order, each with its segment', (t) => {
  const r = only(archive());
  // 'early' sits at 0/2000100, before the backup's stop at 0/2000138: recovery cannot stop there.
  t.deepEqual(
    r.restorePoints.map((p) => [p.name, p.segment]),
    [
      ['load', seg(1, 3)],
      ['tail', seg(1, 5)],
    ],
  );
});

test('a segment after the last commit whose records were not read makes the last commit uncertain and the list incomplete', (t) => {
  const pending = only(archive({ 5: { state: 'pending', records: undefined } }));
  t.false(pending.lastCommitCertain);
  t.false(pending.complete);
  const unread = only(archive({ 5: { records: undefined } }));
  t.false(unread.lastCommitCertain, 'validated before gcwal walked records');
  const before = only(archive({ 3: { records: undefined } }));
  t.true(before.lastCommitCertain, 'an unread segment before the last commit cannot hold a later one');
  t.false(before.complete);
});

test('a time with microseconds reads as microseconds, and a timeline without a window has no records', (t) => {
  t.is(isoMicros('2024-05-01T00:00:00.000001Z'), BigInt(Date.parse('2024-05-01T00:00:00Z')) * 1000n + 1n);
  t.is(isoMicros('2024-05-01T00:00:00Z'), BigInt(Date.parse('2024-05-01T00:00:00Z')) * 1000n);
  t.is(isoMicros('yesterday'), undefined);
  t.deepEqual(restorableRecords(catalogueOf([walEntry(seg(1, 2), at(2))])), []);
});

test("on a catalogue of runs the window's records are what its segments, taken one by one, say", (t) => {
  // Segments 2–40, ten minutes apart (so an hour's run holds several), each with records
  // but 17 (validated before records were walked: its run has none) and 31 (pending); backups
  // from 4 (inside the first run, which the window cuts) and 20.
  const entries = Array.from({ length: 39 }, (_, i) => i + 2).map((n) => {
    const records = n % 5 === 0 ? recs(n, n * 10, n * 10 + 3, [`point-${n}`, `again-${n}`]) : recs(n, n * 10, n * 10 + 1);
    if (n === 31) return walEntry(seg(1, n), at(n * 10), 'pending');
    return walEntry(seg(1, n), at(n * 10), 'valid', n === 17 ? {} : { records });
  });
  const backups = [backup(summary(1, 4, 4, at(40))), backup(summary(1, 20, 20, at(200)))];
  const cut = (last: number) => {
    const kept = entries.filter((e) => e.name <= seg(1, last));
    const folded = foldValidSegments(kept, [], SEG);
    const runs = catalogueOf(
      kept.filter((e) => !folded.names.includes(e.name)),
      backups,
      { walRuns: [...folded.runs] },
    );
    // The same catalogue with every run expanded into the entries it stands for (entryInRun).
    return { runs, expanded: catalogueOf([...walEntries(runs)], backups), count: folded.runs.length };
  };
  for (const last of [40, 30, 24]) {
    const { runs, expanded, count } = cut(last);
    t.true(count > 2, 'several runs');
    const windows = recoverableWindows(expanded);
    t.deepEqual(recoverableWindows(runs), windows);
    const expected = windowRecords(expanded, windows[0]);
    t.deepEqual(windowRecords(runs, windows[0]), expected, `through segment ${last}`);
    if (last === 40) t.true(expected.restorePoints.length >= 4 && !expected.complete);
    if (last === 30) t.like(expected, { lastCommit: { segment: seg(1, 30) }, lastCommitCertain: true });
  }
});
