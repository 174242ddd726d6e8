import test from 'ava';
import { ALERT_SEVERITY, alertMessage, diffAlerts, evaluateAlerts, formatDuration, type AlertThresholds } from '../../../core/alerts/evaluate.ts';
import type { Catalogue, CatalogueWalEntry, OpenAlert } from '../../../core/catalogue/types.ts';
import { at, backup, catalogueOf, deepFreeze, lsnIn, seg, summary, walEntry } from '../catalogue/fixtures.ts';

const THRESHOLDS: AlertThresholds = { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, unvalidatedSeconds: 15 * 60, gapGraceSeconds: 5 * 60 };
const NOW = new Date(at(12));
const B2 = summary(1, 2, 3, at(3));

/** Segments `from`..`to` of timeline 1 (or `timeline`), segment n created at minute n. */
function segments(from: number, to: number, state: CatalogueWalEntry['state'] = 'valid', timeline = 1): CatalogueWalEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => walEntry(seg(timeline, from + i), at(from + i), state));
}

/** A healthy archive at minute 12: WAL 1..10, a valid backup, archiving current. */
function healthy(extra: Partial<Catalogue> = {}, entries = segments(1, 10)): Catalogue {
  return catalogueOf(entries, [backup(B2)], { lastWalArrival: at(10), ...extra });
}

function without(c: Catalogue, ...names: string[]): Catalogue {
  const wal = { ...c.wal };
  for (const n of names) delete wal[n];
  return { ...c, wal };
}

test('a healthy archive raises no alert', (t) => {
  t.deepEqual(evaluateAlerts(healthy(), NOW, THRESHOLDS), []);
});

test('an empty archive raises no alert', (t) => {
  t.deepEqual(evaluateAlerts(catalogueOf([]), NOW, THRESHOLDS), []);
});

// [title, catalogue, now (minutes after T0), the alert ids expected]
const cases: [string, Catalogue, number, string[]][] = [
  [
    'a corrupt segment',
    healthy({}, [...segments(1, 4), walEntry(seg(1, 5), at(5), 'corrupt', { generation: '17' }), ...segments(6, 10)]),
    12,
    [`corrupt-object:wal/${seg(1, 5)}:17`],
  ],
  [
    'a corrupt backup part and backup',
    {
      ...healthy(),
      parts: {
        'backups/b/part_00000.tar': { key: 'backups/b/part_00000.tar', generation: '3', size: 1, created: at(2), state: 'corrupt', problem: 'crc32c mismatch' },
      },
      backups: { ...healthy().backups, base_000000010000000000000007: backup(summary(1, 7, 7, at(7)), 'corrupt', '9') },
    },
    12,
    ['corrupt-object:backups/b/part_00000.tar:3', 'corrupt-object:backups/base_000000010000000000000007/backup.json:9'],
  ],
  ['a hole whose next segment is still fresh', without(healthy(), seg(1, 9)), 12, []],
  ['a hole that has stayed open past the grace', without(healthy(), seg(1, 5), seg(1, 6)), 13, [`wal-gap:1:${seg(1, 5)}`]],
  ['a hole a prune is still closing', { ...without(healthy(), seg(1, 5)), tombstones: { [`wal/${seg(1, 5)}`]: { generation: '1', deleted: at(11) } } }, 12, []],
  [
    'a hole left by a delete long ago',
    { ...without(healthy(), seg(1, 5)), tombstones: { [`wal/${seg(1, 5)}`]: { generation: '1', deleted: at(2) } } },
    12,
    [`wal-gap:1:${seg(1, 5)}`],
  ],
  ['a fork whose history has not arrived yet', healthy({}, [...segments(1, 5), ...segments(9, 10, 'valid', 2)]), 12, []],
  ['a fork whose history never arrived', healthy({}, [...segments(1, 5), ...segments(6, 7, 'valid', 2)]), 12, ['timeline-without-history:2']],
  [
    'a fork with its history and a hole after the switch point',
    healthy({}, [
      ...segments(1, 5),
      walEntry('00000002.history', at(5), 'valid', { history: [{ parentTimeline: 1, switchLsn: lsnIn(6, 0) }] }),
      ...segments(7, 7, 'valid', 2),
    ]),
    13,
    [`wal-gap:2:${seg(2, 6)}`],
  ],
  ['archiving stalled', healthy(), 10 + 31, ['archiving-stalled']],
  ['archiving stalled without a recorded arrival time', healthy({ lastWalArrival: undefined }), 10 + 31, ['archiving-stalled']],
  ['the last arrival in the future (clock skew)', healthy({ lastWalArrival: at(600) }), 100, []],
  ['no backup yet on a new archive', catalogueOf(segments(1, 10), [], { lastWalArrival: at(10) }), 12, []],
  [
    'no backup on an archive older than the backup age limit',
    catalogueOf(segments(1, 10), [], { lastWalArrival: at(10) }),
    36 * 60 + 2,
    ['archiving-stalled', 'no-valid-backup'],
  ],
  [
    'only a corrupt backup',
    catalogueOf(segments(1, 10), [backup(B2, 'corrupt')], { lastWalArrival: at(10) }),
    36 * 60 + 2,
    ['archiving-stalled', `corrupt-object:backups/${B2.name}/backup.json:1`, 'no-valid-backup'],
  ],
  [
    'only a backup just awaiting validation',
    catalogueOf(segments(1, 10), [backup(summary(1, 9, 9, at(36 * 60)), 'pending')], { lastWalArrival: at(36 * 60) }),
    36 * 60 + 2,
    [],
  ],
  ['the newest backup too old', healthy({ lastWalArrival: at(36 * 60 + 5) }), 36 * 60 + 10, ['backup-too-old']],
  [
    'the newest backup too old but a fresh one awaiting validation',
    { ...healthy({ lastWalArrival: at(36 * 60 + 5) }), backups: { ...healthy().backups, n: backup(summary(1, 9, 9, at(36 * 60)), 'pending') } },
    36 * 60 + 10,
    [],
  ],
  ['objects awaiting validation too long', healthy({}, [...segments(1, 8), ...segments(9, 10, 'pending')]), 10 + 16, ['objects-unvalidated']],
  ['objects awaiting validation briefly', healthy({}, [...segments(1, 8), ...segments(9, 10, 'pending')]), 12, []],
];

for (const [title, catalogue, minutes, ids] of cases) {
  test(`evaluateAlerts on ${title}`, (t) => {
    const alerts = evaluateAlerts(catalogue, new Date(at(minutes)), THRESHOLDS);
    t.deepEqual(
      alerts.map((a) => a.id),
      ids,
    );
    for (const a of alerts) {
      t.is(a.severity, ALERT_SEVERITY[a.kind]);
      t.is(a.opened, at(minutes));
      t.regex(a.summary, /^[^\n]+$/, 'one line');
      t.regex(a.summary, /: [a-z]/, 'says what to do');
      t.false(Object.values(a.details).includes(undefined), 'no undefined details');
    }
  });
}

test('a gap alert names the missing segments, where they are and what to do', (t) => {
  t.deepEqual(evaluateAlerts(without(healthy(), seg(1, 5), seg(1, 6)), new Date(at(12)), THRESHOLDS), [], 'not while the segment after it is within the grace');
  const [gap] = evaluateAlerts(without(healthy(), seg(1, 5), seg(1, 6)), new Date(at(13)), THRESHOLDS);
  t.is(gap.severity, 'CRITICAL');
  t.is(
    gap.summary,
    `2 wal segments from ${seg(1, 5)} are missing from the archive on timeline 1, between ${seg(1, 4)} and ${seg(1, 7)} (archived at ${at(7)}); recovery cannot pass ${seg(1, 5)}: take a new base backup now, and check archive_command and pg_stat_archiver on the server`,
  );
  t.deepEqual(gap.details, { timeline: 1, after: seg(1, 4), missing: seg(1, 5), count: 2, before: seg(1, 7) });
});

test('a corrupt segment alert says which segment, why and since when', (t) => {
  const [a] = evaluateAlerts(healthy({}, [...segments(1, 4), walEntry(seg(1, 5), at(5), 'corrupt'), ...segments(6, 10)]), NOW, THRESHOLDS);
  t.is(
    a.summary,
    `wal segment ${seg(1, 5)} archived at ${at(5)} failed validation (crc32c mismatch); recovery cannot replay past it: take a new base backup now so later points stay restorable`,
  );
});

test('the stall, backup age and unvalidated summaries give the time and the limit', (t) => {
  const stall = evaluateAlerts(healthy(), new Date(at(41)), THRESHOLDS)[0];
  t.regex(stall.summary, new RegExp(`^no wal has reached the archive since ${at(10)}, longer than 30 minutes: check archive_command`));
  const old = evaluateAlerts(healthy({ lastWalArrival: at(36 * 60 + 5) }), new Date(at(36 * 60 + 10)), THRESHOLDS)[0];
  t.is(old.summary, `the newest backup ${B2.name} finished at ${at(3)}, more than 36 hours ago: run gcwal backup-push and check its schedule`);
  const waiting = evaluateAlerts(healthy({}, [...segments(1, 8), ...segments(9, 10, 'pending')]), new Date(at(26)), THRESHOLDS)[0];
  t.regex(waiting.summary, new RegExp(`^2 objects have waited more than 15 minutes for validation, the oldest wal/${seg(1, 9)} since ${at(9)}: `));
  t.deepEqual(waiting.details, { count: 2, oldest: `wal/${seg(1, 9)}`, since: at(9), keys: [`wal/${seg(1, 9)}`, `wal/${seg(1, 10)}`] });
});

function openAlert(id: string, opened: string, summary = id): OpenAlert {
  return { id, kind: 'wal-gap', severity: 'CRITICAL', summary, details: {}, opened };
}

test('diffAlerts opens new incidents, resolves cleared ones and keeps the opening time of continuing ones', (t) => {
  const open = deepFreeze({ a: openAlert('a', at(1), 'old summary'), b: openAlert('b', at(2)) });
  const current = deepFreeze([openAlert('c', at(50)), openAlert('a', at(50), 'new summary')]);
  const diff = diffAlerts(open, current, new Date(at(60)));
  t.deepEqual(diff.opened, [openAlert('c', at(60))]);
  t.deepEqual(diff.resolved, [openAlert('b', at(2))]);
  t.deepEqual(diff.next, { a: openAlert('a', at(1), 'new summary'), c: openAlert('c', at(60)) });
  const again = diffAlerts(diff.next, current, new Date(at(70)));
  t.deepEqual([again.opened, again.resolved, again.next], [[], [], diff.next], 'nothing new is announced twice');
});

test('alertMessage announces an opened incident with its cluster and repository', (t) => {
  const a = { ...openAlert('wal-gap:1:X', at(0), 'a gap'), details: { count: 2 } };
  t.deepEqual(alertMessage(a, 'open', '7300000000000000001', 'gs://b/db1', new Date(at(0))), {
    format: 1,
    id: 'wal-gap:1:X',
    status: 'open',
    severity: 'CRITICAL',
    cluster: '7300000000000000001',
    kind: 'wal-gap',
    summary: 'a gap',
    details: { count: 2, opened: at(0) },
    repository: 'gs://b/db1',
    time: at(0),
  });
});

// [minutes open, phrase]
const lasted: [number, string][] = [
  [0.5, 'under a minute'],
  [1, '1 minute'],
  [59, '59 minutes'],
  [125, '2 hours 5 minutes'],
  [60 * 50, '2 days 2 hours'],
];
for (const [minutes, phrase] of lasted) {
  test(`alertMessage says an incident resolved after ${phrase}`, (t) => {
    const m = alertMessage(openAlert('x', at(0), 'a gap'), 'resolved', undefined, 'file:///r', new Date(at(minutes)));
    t.is(m.summary, `resolved after ${phrase}: a gap`);
    t.is(m.status, 'resolved');
    t.is(m.severity, 'CRITICAL');
    t.is(m.cluster, 'unknown');
  });
}

const durations: [number, string][] = [
  [30 * 60, '30 minutes'],
  [60, '1 minute'],
  [36 * 3600, '36 hours'],
  [86400, '1 day'],
  [2 * 86400, '2 days'],
  [90, '90 seconds'],
  [3660, '61 minutes'],
];
for (const [seconds, text] of durations) {
  test(`formatDuration writes ${seconds} seconds as ${text}`, (t) => {
    t.is(formatDuration(seconds), text);
  });
}
