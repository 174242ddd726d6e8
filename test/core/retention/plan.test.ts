import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import { planRetention } from '../../../core/retention/plan.ts';
import { dayDate, dayTime, edited, seg, segKeys } from './catalogue-builder.ts';
import { meta, NOW, runRows, wal } from './check.ts';
import { abandonedBranch, bk, label, linear, promotion, recoveryBeforeEveryBackup, recoveryToThePast, twoPromotions } from './scenarios.ts';

runRows([
  // retain-full only
  {
    title: "retain-full 2 keeps the two newest backups and the wal from the older one's start",
    catalogue: linear().build(),
    policy: { retainFull: 2 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: {
      [meta(bk(1, 20))]: 'retain-full',
      [wal(seg(1, 20))]: 'needed-by-backup',
      [wal(seg(1, 19))]: 'superseded-wal',
      [`backups/${bk(1, 12)}/part_00001.tar`]: 'superseded-backup',
      [label(1, 20)]: 'needed-by-backup',
    },
    window: { backup: bk(1, 20), from: dayTime(20, 2), timeline: 1 },
    warnings: [],
  },
  {
    title: 'retain-full 1 keeps only the newest backup and its wal',
    catalogue: linear().build(),
    policy: { retainFull: 1 },
    kept: [bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 26), label(1, 5), label(1, 12), label(1, 20)],
    warnings: [],
  },
  {
    title: 'retain-full above the number of backups keeps them all and says so',
    catalogue: linear().build(),
    policy: { retainFull: 6 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [],
    deletedWal: segKeys(1, 1, 4),
    warnings: [/^only 4 restorable backups, fewer than retain-full 6; all are kept$/],
  },
  // retain-days only
  {
    title: 'retain-days keeps the newest backup stopped before now minus the days and every newer one',
    catalogue: linear().build(),
    policy: { retainDays: 10 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 20))]: 'retain-days', [meta(bk(1, 27))]: 'retain-days' },
    window: { backup: bk(1, 20), requestedFrom: dayTime(21) },
    warnings: [],
  },
  {
    title: 'retain-days keeps a backup that stopped exactly at the start of the window',
    catalogue: linear().build(),
    policy: { retainDays: 20 },
    now: dayDate(32, 2),
    kept: [bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5)],
    deletedWal: [...segKeys(1, 1, 11), label(1, 5)],
    window: { backup: bk(1, 12), from: dayTime(12, 2), requestedFrom: dayTime(12, 2) },
    warnings: [],
  },
  {
    title: 'retain-days longer than the history keeps every restorable backup and says so',
    catalogue: linear().build(),
    policy: { retainDays: 30 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [],
    deletedWal: segKeys(1, 1, 4),
    warnings: [/^no restorable backup stopped before 2026-01-02T00:00:00.000Z; the earliest restorable point is 2026-01-06T02:00:00.000Z$/],
  },
  // both
  {
    title: 'retain-full and retain-days together keep the union, here by the backup count',
    catalogue: linear().build(),
    policy: { retainFull: 3, retainDays: 10 },
    kept: [bk(1, 12), bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5)],
    deletedWal: [...segKeys(1, 1, 11), label(1, 5)],
    codes: { [meta(bk(1, 12))]: 'retain-full', [meta(bk(1, 27))]: 'retain-full' },
  },
  {
    title: 'retain-full and retain-days together keep the union, here by the days',
    catalogue: linear().build(),
    policy: { retainFull: 1, retainDays: 10 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 20))]: 'retain-days', [meta(bk(1, 27))]: 'retain-full' },
  },
  // a longer WAL window
  {
    title: 'a longer wal window keeps wal created within it though no kept backup needs it',
    catalogue: linear().build(),
    policy: { retainDays: 10, walRetainDays: 20 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 10), label(1, 5)],
    codes: { [wal(seg(1, 11))]: 'wal-window', [wal(seg(1, 19))]: 'wal-window', [label(1, 12)]: 'wal-window', [meta(bk(1, 12))]: 'superseded-backup' },
    window: { backup: bk(1, 20), requestedFrom: dayTime(21), walFrom: dayTime(11) },
  },
  // timelines
  {
    title: 'after a promotion, a kept backup from before it keeps its timeline from its start, before and after the fork',
    catalogue: promotion(),
    policy: { retainFull: 2 },
    kept: [bk(1, 3), bk(2, 9)],
    deleted: [bk(1, 1)],
    deletedWal: [...segKeys(1, 1, 2), label(1, 1)],
    codes: {
      [wal(seg(1, 3))]: 'needed-by-backup',
      [wal(seg(1, 4))]: 'needed-by-backup',
      [wal(seg(1, 6))]: 'needed-by-backup',
      [wal(`${seg(1, 5)}.partial`)]: 'needed-by-backup',
      [wal(seg(2, 5))]: 'needed-by-backup',
      'wal/00000002.history': 'timeline-history',
    },
    window: { backup: bk(1, 3), timeline: 1 },
  },
  {
    title: 'after a promotion, keeping only a backup on the new timeline lets the old timeline go, except what was archived after it started',
    catalogue: promotion(),
    policy: { retainFull: 1 },
    kept: [bk(2, 9)],
    deleted: [bk(1, 1), bk(1, 3)],
    deletedWal: [...segKeys(1, 1, 7), wal(`${seg(1, 5)}.partial`), label(1, 1), label(1, 3), ...segKeys(2, 5, 8)],
    codes: { [wal(seg(1, 8))]: 'not-superseded', [wal(seg(2, 9))]: 'needed-by-backup', 'wal/00000002.history': 'timeline-history' },
    window: { backup: bk(2, 9), timeline: 2 },
  },
  {
    title: 'a backup host clock running ahead does not make wal archived after the backup started look older',
    catalogue: (() => {
      const c = promotion();
      const b = c.backups[bk(2, 9)];
      b.startTime = dayTime(9, 5);
      b.stopTime = dayTime(9, 6);
      c.wal[seg(1, 8)].created = dayTime(9, 2);
      return c;
    })(),
    policy: { retainFull: 1 },
    kept: [bk(2, 9)],
    deleted: [bk(1, 1), bk(1, 3)],
    deletedWal: [...segKeys(1, 1, 7), wal(`${seg(1, 5)}.partial`), label(1, 1), label(1, 3), ...segKeys(2, 5, 8)],
    codes: { [wal(seg(1, 8))]: 'not-superseded' },
  },
  {
    title: "after two promotions, the history file of a timeline nothing kept is on goes, the kept timeline's stays",
    catalogue: twoPromotions(),
    policy: { retainFull: 1 },
    kept: [bk(3, 17)],
    deleted: [bk(1, 2), bk(2, 7), bk(3, 12)],
    deletedWal: [...segKeys(1, 1, 5), ...segKeys(2, 5, 10), ...segKeys(3, 10, 16), 'wal/00000002.history', label(1, 2), label(2, 7), label(3, 12)],
    codes: { 'wal/00000002.history': 'superseded-history', 'wal/00000003.history': 'timeline-history' },
  },
  {
    title: 'after two promotions, keeping two backups of the newest timeline keeps its wal from the older one',
    catalogue: twoPromotions(),
    policy: { retainFull: 2 },
    kept: [bk(3, 12), bk(3, 17)],
    deleted: [bk(1, 2), bk(2, 7)],
    deletedWal: [...segKeys(1, 1, 5), ...segKeys(2, 5, 10), ...segKeys(3, 10, 11), 'wal/00000002.history', label(1, 2), label(2, 7)],
  },
  {
    title: "after two promotions, wal archived late on an older timeline keeps that timeline's history file",
    catalogue: (() => {
      const c = twoPromotions();
      c.wal[seg(2, 11)] = { name: seg(2, 11), generation: '9', size: 1, created: dayTime(19), state: 'valid' };
      return c;
    })(),
    policy: { retainFull: 1 },
    kept: [bk(3, 17)],
    deleted: [bk(1, 2), bk(2, 7), bk(3, 12)],
    deletedWal: [...segKeys(1, 1, 5), ...segKeys(2, 5, 10), ...segKeys(3, 10, 16), label(1, 2), label(2, 7), label(3, 12)],
    codes: { [wal(seg(2, 11))]: 'not-superseded', 'wal/00000002.history': 'timeline-history' },
  },
  {
    title: 'an abandoned branch that ended before the kept backups goes without keeping older backups',
    catalogue: abandonedBranch(),
    policy: { retainFull: 2 },
    kept: [bk(1, 10), bk(1, 20)],
    deleted: [bk(1, 5)],
    deletedWal: [...segKeys(1, 1, 9), label(1, 5), ...segKeys(2, 6, 9)],
    codes: { 'wal/00000002.history': 'timeline-history' },
    warnings: [],
  },
  {
    title: 'a timeline recovered to a point before the oldest kept backup keeps the older backup that reaches it',
    catalogue: recoveryToThePast(),
    policy: { retainFull: 2 },
    kept: [bk(1, 10), bk(1, 20), bk(2, 16)],
    deleted: [bk(1, 5)],
    deletedWal: [...segKeys(1, 1, 9), label(1, 5)],
    codes: { [meta(bk(1, 10))]: 'timeline-branch', [meta(bk(1, 20))]: 'retain-full', [wal(seg(2, 12))]: 'needed-by-backup' },
    window: { backup: bk(1, 10) },
    warnings: [],
  },
  {
    title: 'a recovered timeline whose own first backup starts where it does needs no older backup',
    catalogue: recoveryToThePast(12),
    policy: { retainFull: 2 },
    kept: [bk(1, 20), bk(2, 12)],
    deleted: [bk(1, 5), bk(1, 10)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 10)],
    codes: { [wal(seg(2, 12))]: 'needed-by-backup', [wal(seg(1, 21))]: 'needed-by-backup' },
    window: { backup: bk(1, 20) },
    warnings: [],
  },
  {
    title: "a recovered timeline's own backup alone lets the abandoned timeline go",
    catalogue: recoveryToThePast(),
    policy: { retainFull: 1 },
    kept: [bk(2, 16)],
    deleted: [bk(1, 5), bk(1, 10), bk(1, 20)],
    deletedWal: [...segKeys(1, 1, 21), label(1, 5), label(1, 10), label(1, 20), ...segKeys(2, 12, 15)],
    codes: { 'wal/00000002.history': 'timeline-history' },
  },
  {
    title: 'a timeline recovered to before every backup keeps its wal and says its early points cannot be restored',
    catalogue: recoveryBeforeEveryBackup(),
    policy: { retainFull: 2 },
    kept: [bk(1, 10), bk(1, 20)],
    deleted: [bk(1, 5)],
    deletedWal: [...segKeys(1, 1, 9), label(1, 5)],
    codes: { [wal(seg(2, 3))]: 'not-superseded', [wal(seg(2, 9))]: 'not-superseded', [wal(seg(2, 10))]: 'needed-by-backup' },
    warnings: [/^timeline 2 branched off before backup base_00000001000000000000000A and no restorable backup reaches its first segments/],
  },
]);

test('deletes come in a safe order: backup.json first, then the rest of each backup, then wal, then history files', (t) => {
  const plan = planRetention(twoPromotions(), { retainFull: 1 }, NOW);
  const kinds = plan.delete.map((o) => o.kind);
  const phase = (k: string) => (k === 'backup' ? 0 : k === 'part' || k === 'manifest' ? 1 : k === 'history' ? 3 : 2);
  t.deepEqual(
    kinds.map(phase),
    [...kinds.map(phase)].sort((a, b) => a - b),
  );
  t.is(kinds[0], 'backup');
  t.is(kinds.at(-1), 'history');
  t.deepEqual(
    plan.keep.map((o) => o.key),
    [...plan.keep.map((o) => o.key)].sort(),
  );
});

test('the reason counts add up to the plan', (t) => {
  const plan = planRetention(linear().build(), { retainFull: 2 }, NOW);
  const count = (action: string, code: string) => plan.reasons.find((r) => r.action === action && r.code === code)?.objects;
  t.is(count('delete', 'superseded-backup'), 2 * 4);
  t.is(count('delete', 'superseded-wal'), 19 + 2);
  t.is(
    plan.reasons.reduce((n, r) => n + r.objects, 0),
    plan.keep.length + plan.delete.length,
  );
  t.is(plan.reasons[0].action, 'delete');
});

test('every backup is listed oldest first with whether it can restore and why not', (t) => {
  const c = edited(linear(), (cat) => {
    cat.wal[seg(1, 27)].state = 'pending';
    cat.backups[bk(1, 12)].state = 'corrupt';
    cat.backups[bk(1, 12)].problem = 'part 1 crc mismatch';
  });
  const plan = planRetention(c, { retainFull: 1 }, NOW);
  t.deepEqual(
    plan.backups.map((b) => [b.name, b.action, b.restorable]),
    [
      [bk(1, 5), 'delete', true],
      [bk(1, 12), 'delete', false],
      [bk(1, 20), 'keep', true],
      [bk(1, 27), 'keep', false],
    ],
  );
  t.is(plan.backups[1].problem, 'it is corrupt: part 1 crc mismatch');
  t.is(plan.backups[3].problem, `wal segment ${seg(1, 27)} between its start and stop is not validated yet`);
  t.regex(plan.backups[3].reason, /^not restorable \(wal segment .* is not validated yet\) but newer than backup base_000000010000000000000014/);
});

test('planRetention refuses an invalid time', (t) => {
  t.throws(() => planRetention(linear().build(), { retainFull: 1 }, new Date(Number.NaN)), { instanceOf: InvalidInputError });
});
