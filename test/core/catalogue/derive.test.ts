import test from 'ava';
import { placeholderBackupFields } from '../../../core/catalogue/apply.ts';
import { recoverableWindows, timelineSegments, timelinesWithoutHistory, walGaps, walRanges, type TimelineWindow } from '../../../core/catalogue/derive.ts';
import type { Catalogue, CatalogueBackup, CatalogueWalEntry } from '../../../core/catalogue/types.ts';
import { migrateCatalogue } from '../../../core/catalogue/store.ts';
import { walSegmentName } from '../../../core/wal/name.ts';
import { at, backup, catalogueOf, lsnIn, MiB, seg, summary, walEntry } from './fixtures.ts';

/** Valid segments `from`..`to` of `timeline`, segment n created at minute n. */
function segments(timeline: number, from: number, to: number, state: CatalogueWalEntry['state'] = 'valid'): CatalogueWalEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => walEntry(seg(timeline, from + i), at(from + i), state));
}

/** `c` with its valid segments folded into runs, as the store converts a format-1 catalogue; fails unless something was folded. */
function folded(c: Catalogue): Catalogue {
  const out = migrateCatalogue({ ...c, format: 1 as never, walRuns: undefined as never, segmentTombstones: undefined as never });
  const valid = Object.values(c.wal).filter((e) => e.state === 'valid' && /^[0-9A-F]{24}$/.test(e.name)).length;
  if (valid > 0 && out.walRuns.length === 0) throw new Error('nothing was folded');
  if (Object.values(out.wal).some((e) => e.state === 'valid' && /^[0-9A-F]{24}$/.test(e.name))) throw new Error('a valid segment was left unfolded');
  return out;
}

function history(timeline: number, lines: { parentTimeline: number; switchLsn: string }[]): CatalogueWalEntry {
  return walEntry(`0000000${timeline}.history`, at(0), 'valid', { history: lines });
}

test('timelineSegments orders segments numerically per timeline and leaves out other files', (t) => {
  const c = catalogueOf([
    walEntry('000000010000000100000000', at(3)),
    walEntry('0000000100000000000000FF', at(2)),
    walEntry('000000020000000000000001', at(5)),
    walEntry('000000010000000000000005.partial', at(1)),
    walEntry('00000002.history', at(1)),
    walEntry('000000010000000000000001.00000028.backup', at(1)),
    walEntry('000000010000000000000300', at(1)), // cannot exist with 16 MiB segments
  ]);
  const byTimeline = timelineSegments(c);
  t.deepEqual([...byTimeline.keys()], [1, 2]);
  t.deepEqual(
    byTimeline.get(1)!.map((s) => [s.segNo, s.entry.name]),
    [
      [0xffn, '0000000100000000000000FF'],
      [0x100n, '000000010000000100000000'],
    ],
  );
});

test('walRanges splits each timeline into runs of consecutive segments and counts their states', (t) => {
  const c = catalogueOf([
    ...segments(1, 1, 3),
    walEntry(seg(1, 4), at(4), 'pending'),
    walEntry(seg(1, 5), at(5), 'corrupt'),
    ...segments(1, 8, 9, 'pending'),
    ...segments(2, 7, 7),
  ]);
  t.deepEqual(walRanges(c), [
    { timeline: 1, first: seg(1, 1), last: seg(1, 5), segments: 5, valid: 3, pending: 1, corrupt: 1 },
    { timeline: 1, first: seg(1, 8), last: seg(1, 9), segments: 2, valid: 0, pending: 2, corrupt: 0 },
    { timeline: 2, first: seg(2, 7), last: seg(2, 7), segments: 1, valid: 1, pending: 0, corrupt: 0 },
  ]);
});

test('walRanges reads names with the catalogue segment size', (t) => {
  const c = catalogueOf([walEntry('000000010000000000000FFF', at(1)), walEntry('000000010000000100000000', at(2))], [], { walSegmentSize: MiB });
  t.deepEqual(
    walRanges(c).map((r) => [r.first, r.last]),
    [['000000010000000000000FFF', '000000010000000100000000']],
  );
});

// [title, entries, gaps]
const gapCases: [string, CatalogueWalEntry[], Omit<ReturnType<typeof walGaps>[number], 'beforeCreated'>[]][] = [
  ['no holes in a contiguous timeline', segments(1, 1, 9), []],
  ['one missing segment', [...segments(1, 1, 3), ...segments(1, 5, 6)], [{ timeline: 1, after: seg(1, 3), missing: seg(1, 4), count: 1, before: seg(1, 5) }]],
  ['a corrupt segment is no hole', [...segments(1, 1, 3), walEntry(seg(1, 4), at(4), 'corrupt'), ...segments(1, 5, 6)], []],
  [
    'holes across an xlogid boundary, on each timeline',
    [walEntry('0000000100000000000000FE', at(1)), walEntry('000000010000000100000001', at(2)), ...segments(2, 3, 3), ...segments(2, 7, 7)],
    [
      { timeline: 1, after: '0000000100000000000000FE', missing: '0000000100000000000000FF', count: 2, before: '000000010000000100000001' },
      { timeline: 2, after: seg(2, 3), missing: seg(2, 4), count: 3, before: seg(2, 7) },
    ],
  ],
  [
    'a hole between the switch point and the first segment of a timeline',
    [...segments(1, 1, 5), history(2, [{ parentTimeline: 1, switchLsn: lsnIn(6, 0x100) }]), ...segments(2, 8, 9)],
    [{ timeline: 2, missing: seg(2, 6), count: 2, before: seg(2, 8) }],
  ],
  ['a timeline starting at its switch point', [...segments(1, 1, 5), history(2, [{ parentTimeline: 1, switchLsn: lsnIn(6, 0) }]), ...segments(2, 6, 9)], []],
];

for (const [title, entries, expected] of gapCases) {
  test(`walGaps finds ${title}`, (t) => {
    const c = catalogueOf(entries);
    t.deepEqual(
      walGaps(c).map(({ beforeCreated: _, ...gap }) => gap),
      expected,
    );
    for (const gap of walGaps(c)) t.is(gap.beforeCreated, c.wal[gap.before].created);
  });
  test(`walGaps finds ${title}, the same when the valid segments are folded into runs`, (t) => {
    const c = catalogueOf(entries);
    t.deepEqual(walGaps(folded(c)), walGaps(c));
    t.deepEqual(walRanges(folded(c)), walRanges(c));
  });
}

test('timelinesWithoutHistory names timelines after the first with WAL or a backup but no history file', (t) => {
  const c = catalogueOf(
    [...segments(1, 1, 2), ...segments(2, 3, 3), history(3, []), ...segments(3, 4, 4), walEntry(`${seg(4, 5)}.partial`, at(5))],
    [backup(summary(5, 6, 6, at(6))), { ...placeholderBackupFields('base_000000090000000000000001'), generation: '1', state: 'corrupt' } as CatalogueBackup],
  );
  t.deepEqual(timelinesWithoutHistory(c), [2, 4, 5]);
});

/** Only the fields a window test checks. */
function brief(w: TimelineWindow) {
  return {
    timeline: w.timeline,
    spans: w.spans.map((s) => [s.from.backup, s.from.lsn, s.to.lsn, s.to.segment, s.unvalidatedSegments]),
    earliest: w.earliest && [w.earliest.backup, w.earliest.lsn, w.earliest.time],
    latest: w.latest && [w.latest.lsn, w.latest.time],
  };
}

const B2 = summary(1, 2, 3, at(3)); // timeline 1, WAL 2..3
const B7 = summary(1, 7, 7, at(7)); // timeline 1, WAL 7
const FORK = lsnIn(6, 0x1000); // timeline 2 starts in segment 6

// [title, catalogue, expected windows (brief)]
const windowCases: [string, Catalogue, ReturnType<typeof brief>[]][] = [
  [
    'a valid backup and unbroken WAL after it',
    catalogueOf(segments(1, 1, 10), [backup(B2)]),
    [
      {
        timeline: 1,
        spans: [[B2.name, B2.stopLsn, lsnIn(11, 0), seg(1, 10), 0]],
        earliest: [B2.name, B2.stopLsn, B2.stopTime],
        latest: [lsnIn(11, 0), at(10)],
      },
    ],
  ],
  [
    'a backup whose stop segment is missing',
    catalogueOf([...segments(1, 1, 2), ...segments(1, 4, 10)], [backup(B2)]),
    [{ timeline: 1, spans: [], earliest: undefined, latest: undefined }],
  ],
  [
    'a corrupt segment ending the WAL early',
    catalogueOf([...segments(1, 1, 5), walEntry(seg(1, 6), at(6), 'corrupt'), ...segments(1, 7, 10)], [backup(B2)]),
    [{ timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(6, 0), seg(1, 5), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(6, 0), at(5)] }],
  ],
  [
    'a gap with a later backup beyond it',
    catalogueOf([...segments(1, 1, 4), ...segments(1, 7, 9)], [backup(B2), backup(B7)]),
    [
      {
        timeline: 1,
        spans: [
          [B2.name, B2.stopLsn, lsnIn(5, 0), seg(1, 4), 0],
          [B7.name, B7.stopLsn, lsnIn(10, 0), seg(1, 9), 0],
        ],
        earliest: [B2.name, B2.stopLsn, B2.stopTime],
        latest: [lsnIn(10, 0), at(9)],
      },
    ],
  ],
  [
    'two backups on one run of WAL: the older one opens it',
    catalogueOf(segments(1, 1, 9), [backup(B7), backup(B2)]),
    [{ timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(10, 0), seg(1, 9), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(10, 0), at(9)] }],
  ],
  [
    'backups not valid, or of another cluster, do not count',
    catalogueOf(
      segments(1, 1, 9),
      [backup(B2, 'pending'), backup({ ...summary(1, 4, 4, at(4)) }, 'corrupt'), backup({ ...summary(1, 5, 5, at(5)), systemIdentifier: '42' }), backup(B7)],
      { systemIdentifier: '7300000000000000001' },
    ),
    [{ timeline: 1, spans: [[B7.name, B7.stopLsn, lsnIn(10, 0), seg(1, 9), 0]], earliest: [B7.name, B7.stopLsn, B7.stopTime], latest: [lsnIn(10, 0), at(9)] }],
  ],
  [
    'segments not yet validated are counted',
    catalogueOf(
      [walEntry(seg(1, 1), at(1), 'pending'), walEntry(seg(1, 2), at(2), 'pending'), ...segments(1, 3, 4), ...segments(1, 5, 6, 'pending')],
      [backup(B2)],
    ),
    [{ timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(7, 0), seg(1, 6), 3]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(7, 0), at(6)] }],
  ],
  [
    'a fork: the new timeline restores from a backup on its parent',
    catalogueOf(
      [...segments(1, 1, 5), walEntry(`${seg(1, 6)}.partial`, at(6)), history(2, [{ parentTimeline: 1, switchLsn: FORK }]), ...segments(2, 6, 9)],
      [backup(B2)],
    ),
    [
      { timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(6, 0), seg(1, 5), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(6, 0), at(5)] },
      { timeline: 2, spans: [[B2.name, B2.stopLsn, lsnIn(10, 0), seg(2, 9), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(10, 0), at(9)] },
    ],
  ],
  [
    "a fork without its history file: only the timeline's own backups",
    catalogueOf([...segments(1, 1, 5), ...segments(2, 6, 9)], [backup(B2)]),
    [
      { timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(6, 0), seg(1, 5), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(6, 0), at(5)] },
      { timeline: 2, spans: [], earliest: undefined, latest: undefined },
    ],
  ],
  [
    'a parent backup taken after the fork does not count for the child',
    catalogueOf([...segments(1, 5, 8), history(2, [{ parentTimeline: 1, switchLsn: FORK }]), ...segments(2, 6, 9)], [backup(B7)]),
    [
      { timeline: 1, spans: [[B7.name, B7.stopLsn, lsnIn(9, 0), seg(1, 8), 0]], earliest: [B7.name, B7.stopLsn, B7.stopTime], latest: [lsnIn(9, 0), at(8)] },
      { timeline: 2, spans: [], earliest: undefined, latest: undefined },
    ],
  ],
  [
    'two forks: timeline 3 restores through timelines 1 and 2',
    catalogueOf(
      [
        ...segments(1, 1, 5),
        history(2, [{ parentTimeline: 1, switchLsn: FORK }]),
        ...segments(2, 6, 7),
        history(3, [
          { parentTimeline: 1, switchLsn: FORK },
          { parentTimeline: 2, switchLsn: lsnIn(8, 0) },
        ]),
        ...segments(3, 8, 8),
      ],
      [backup(B2)],
    ),
    [
      { timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(6, 0), seg(1, 5), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(6, 0), at(5)] },
      { timeline: 2, spans: [[B2.name, B2.stopLsn, lsnIn(8, 0), seg(2, 7), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(8, 0), at(7)] },
      { timeline: 3, spans: [[B2.name, B2.stopLsn, lsnIn(9, 0), seg(3, 8), 0]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(9, 0), at(8)] },
    ],
  ],
];

for (const [title, catalogue, expected] of windowCases) {
  test(`recoverableWindows: ${title}`, (t) => {
    t.deepEqual(recoverableWindows(catalogue).map(brief), expected);
  });
  test(`recoverableWindows: ${title}, the same when the valid segments are folded into runs`, (t) => {
    t.deepEqual(recoverableWindows(folded(catalogue)), recoverableWindows(catalogue));
    t.deepEqual(timelinesWithoutHistory(folded(catalogue)), timelinesWithoutHistory(catalogue));
  });
}

test('recoverableWindows reports the newest segment of each timeline, whatever its state', (t) => {
  const c = catalogueOf([...segments(1, 1, 3), walEntry(seg(1, 9), at(20), 'corrupt'), ...segments(2, 4, 4, 'pending')]);
  t.deepEqual(
    recoverableWindows(c).map((w) => [w.timeline, w.newestWal]),
    [
      [1, { name: seg(1, 9), created: at(20) }],
      [2, { name: seg(2, 4), created: at(4) }],
    ],
  );
});

test('recoverableWindows works at 1 MiB segments across an xlogid boundary', (t) => {
  const name = (n: number) => walSegmentName(1, BigInt(n), MiB);
  const b: CatalogueBackup = {
    ...backup(summary(1, 0, 0, at(1))),
    name: `base_${name(0xffe)}`,
    startWalSegment: name(0xffe),
    stopWalSegment: name(0xffe),
    startLsn: '0/FFE0028',
    stopLsn: '0/FFE0138',
  };
  const c = catalogueOf(
    [0xffe, 0xfff, 0x1000].map((n) => walEntry(name(n), at(n - 0xff0))),
    [b],
    { walSegmentSize: MiB },
  );
  t.deepEqual(recoverableWindows(c).map(brief), [
    { timeline: 1, spans: [[b.name, '0/FFE0138', '1/100000', name(0x1000), 0]], earliest: [b.name, '0/FFE0138', b.stopTime], latest: ['1/100000', at(0x10)] },
  ]);
});

test('recoverableWindows counts backups awaiting validation only when asked to', (t) => {
  const c = catalogueOf(segments(1, 1, 5, 'pending'), [backup(B2, 'pending')]);
  t.deepEqual(recoverableWindows(c)[0].spans, []);
  t.deepEqual(recoverableWindows(c, { includePending: true }).map(brief), [
    { timeline: 1, spans: [[B2.name, B2.stopLsn, lsnIn(6, 0), seg(1, 5), 4]], earliest: [B2.name, B2.stopLsn, B2.stopTime], latest: [lsnIn(6, 0), at(5)] },
  ]);
});

test('recoverableWindows never ends a span before it starts when the last segment was archived before the backup recorded its stop', (t) => {
  // pg_backup_stop waits until its segment is archived, so that segment's object is older than the backup's stopTime.
  const late = summary(1, 2, 3, at(30));
  const [window] = recoverableWindows(catalogueOf(segments(1, 1, 3), [backup(late)]));
  t.is(window.earliest?.time, at(30));
  t.is(window.latest?.time, at(30));
  t.is(window.latest?.lsn, lsnIn(4, 0));
});
