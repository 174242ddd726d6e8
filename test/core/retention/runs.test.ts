/**
 * Retention over a catalogue whose valid segments are folded into runs
 * (core/catalogue/runs.ts), as the pipeline's catalogue is since format 2.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { migrateCatalogue } from '../../../core/catalogue/store.ts';
import type { Catalogue } from '../../../core/catalogue/types.ts';
import { executeRetentionPlan } from '../../../core/retention/execute.ts';
import { planRetention, type PlannedObject, type RetentionPolicy } from '../../../core/retention/plan.ts';
import { expandPlanned, plannedCount } from '../../../core/retention/planned.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { CatalogueBuilder, dayDate, dayTime, seg } from './catalogue-builder.ts';
import { NOW } from './check.ts';
import { abandonedBranch, linear, pgUpgrade, promotion, recoveryBeforeEveryBackup, recoveryToThePast, twoPromotions } from './scenarios.ts';

function folded(c: Catalogue): Catalogue {
  const out = migrateCatalogue({ ...c, format: 1 as never });
  if (out.walRuns.length === 0) throw new Error('nothing was folded');
  return out;
}

/** A plan's objects (ranges listed one by one) without generations, which folding turns into an upper bound. */
function decisions(objects: readonly PlannedObject[]): string[] {
  return [...expandPlanned(objects)].map((o) => `${o.key} ${o.code}`);
}

const cases: [string, Catalogue, RetentionPolicy][] = [
  ['one timeline, keep 1', linear().build(), { retainFull: 1 }],
  ['one timeline, keep 2 and a wal window', linear().build(), { retainFull: 2, walRetainDays: 10 }],
  ['a promotion', promotion(), { retainFull: 1 }],
  ['two promotions', twoPromotions(), { retainFull: 1 }],
  ['a recovery to the past', recoveryToThePast(), { retainFull: 1 }],
  ['a recovery before every backup', recoveryBeforeEveryBackup(), { retainFull: 1 }],
  ['a pg_upgrade', pgUpgrade(), { retainFull: 1 }],
  ['an abandoned branch', abandonedBranch(), { retainFull: 1 }],
  // Segments an hour apart fold into runs of several.
  [
    'runs of several segments',
    (() => {
      const b = new CatalogueBuilder();
      for (let n = 1; n <= 30; n++) b.wal(seg(1, n), dayTime(Math.floor((n - 1) / 6), (n - 1) % 6));
      for (const n of [7, 19, 25]) b.backup(1, n);
      return b.build();
    })(),
    { retainFull: 1 },
  ],
  // Runs of 31 segments (one every 2 minutes), cut inside by the backups' starts and the wal window's start.
  ...(() => {
    const b = new CatalogueBuilder();
    const created = (n: number) => 20 + (n * 2) / 1440;
    for (let n = 1; n <= 300; n++) b.wal(seg(1, n), dayTime(created(n)));
    for (const n of [40, 130, 250]) b.backup(1, n, { day: created(n) - 1 / 24 + 1 / 1440, label: n !== 130 });
    const catalogue = b.build();
    return [
      ['runs cut by backups', catalogue, { retainFull: 1 }],
      ['runs cut by backups and a wal window', catalogue, { retainFull: 1, walRetainDays: 10.8 }],
      ['runs cut by backups, keep 2', catalogue, { retainFull: 2 }],
    ] as [string, Catalogue, RetentionPolicy][];
  })(),
];

for (const [title, catalogue, policy] of cases) {
  test(`retention plans the same over folded segments: ${title}`, (t) => {
    const plain = planRetention(catalogue, policy, NOW);
    const runs = planRetention(folded(catalogue), policy, NOW);
    // A range sits at its first segment's key, so a .backup label inside it may be listed after its later segments.
    t.deepEqual(decisions(runs.delete).sort(), decisions(plain.delete).sort());
    t.deepEqual(decisions(runs.keep).sort(), decisions(plain.keep).sort());
    t.deepEqual(runs.window, plain.window);
    t.deepEqual(runs.warnings, plain.warnings);
    // A folded segment is deleted at whatever generation is live, up to its run's.
    for (const o of [...expandPlanned(runs.delete)].filter((d) => /^wal\/[0-9A-F]{24}$/.test(d.key))) {
      t.is(o.generation, undefined, o.key);
      t.true(BigInt(o.generationAtMost!) >= BigInt(plain.delete.find((p) => p.key === o.key)!.generation!), o.key);
    }
  });
}

test('a folded segment is deleted at its live generation, unless it was replaced after its run was folded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-retention-runs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const storage = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
  await storage.createRoot();
  const put = (key: string) => storage.write(key, Readable.from([Buffer.from('x')]), {});
  const kept = await put(`wal/${seg(1, 1)}`);
  const replaced = await put(`wal/${seg(1, 2)}`);
  const object = (key: string, generationAtMost: string): PlannedObject => ({
    key,
    generationAtMost,
    kind: 'segment',
    timeline: 1,
    code: 'superseded-wal',
    reason: 'test',
  });
  const plan = {
    delete: [object(`wal/${seg(1, 1)}`, kept.generation), object(`wal/${seg(1, 2)}`, String(BigInt(replaced.generation) - 1n))],
  } as unknown as Parameters<typeof executeRetentionPlan>[1];
  const report = await executeRetentionPlan(storage, plan);
  t.deepEqual(
    report.deleted.map((o) => [o.key, o.generation]),
    [[`wal/${seg(1, 1)}`, kept.generation]],
  );
  t.deepEqual(
    report.skipped.map((s) => s.object.key),
    [`wal/${seg(1, 2)}`],
  );
  t.is(await storage.stat(`wal/${seg(1, 1)}`), undefined);
  t.truthy(await storage.stat(`wal/${seg(1, 2)}`));
});

test('a plan over 30 days of a segment a second holds objects per piece of a run, not per segment', (t) => {
  const SEGMENTS = 30 * 86_400;
  const b = new CatalogueBuilder();
  // Segment n created n seconds after day 0; a backup a day, starting a second after its start segment.
  for (let d = 0; d < 30; d++) {
    const start = d * 86_400 + 100;
    b.backup(1, start, { day: start / 86_400 - 1 / 24 + 1 / 86_400, label: false });
  }
  const at = (n: number) => new Date(dayDate(0).getTime() + n * 1000).toISOString();
  const catalogue = b
    .edit((c) => {
      for (let first = 1; first <= SEGMENTS; first += 3600) {
        const last = Math.min(SEGMENTS, first + 3599);
        c.walRuns.push({
          timeline: 1,
          first: seg(1, first),
          last: seg(1, last),
          size: (last - first + 1) * 1000,
          firstCreated: at(first),
          lastCreated: at(last),
          generation: '5',
          validated: at(last),
        });
      }
    })
    .build();
  const plan = planRetention(catalogue, { retainFull: 7 }, NOW);
  const wal = (objects: readonly PlannedObject[]) => objects.filter((o) => o.key.startsWith('wal/'));
  // The anchor is day 23's backup: every segment before its start goes, the rest stays.
  const anchorStart = 23 * 86_400 + 100;
  t.is(plan.window.backup, `base_${seg(1, anchorStart)}`);
  t.is(plannedCount(wal(plan.delete)), anchorStart - 1);
  t.is(plannedCount(wal(plan.keep)), SEGMENTS - anchorStart + 1);
  // 720 runs; the anchor's start (from which every kept backup's WAL is needed) cuts one in two.
  t.is(wal(plan.delete).length + wal(plan.keep).length, 720 + 1);
  const cut = wal(plan.keep).find((o) => o.key === `wal/${seg(1, anchorStart)}`);
  t.like(cut, { code: 'needed-by-backup', through: `wal/${seg(1, 23 * 86_400 + 3600)}`, count: 3501 });
});

test('a range of segments planned alike is deleted segment by segment and reported one by one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-retention-runs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const storage = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
  await storage.createRoot();
  const infos = [];
  for (const n of [3, 4, 5, 6]) infos.push(await storage.write(`wal/${seg(1, n)}`, Readable.from([Buffer.from('x')]), {}));
  const range: PlannedObject = {
    key: `wal/${seg(1, 3)}`,
    through: `wal/${seg(1, 5)}`,
    count: 3,
    segmentSize: 16 * 1024 * 1024,
    generationAtMost: infos[2].generation,
    kind: 'segment',
    timeline: 1,
    code: 'superseded-wal',
    reason: 'test',
  };
  const report = await executeRetentionPlan(storage, { delete: [range] } as unknown as Parameters<typeof executeRetentionPlan>[1]);
  t.deepEqual(
    report.deleted.map((o) => [o.key, o.generation, o.count]),
    infos.slice(0, 3).map((i) => [i.key, i.generation, undefined]),
  );
  for (const n of [3, 4, 5]) t.is(await storage.stat(`wal/${seg(1, n)}`), undefined);
  t.truthy(await storage.stat(`wal/${seg(1, 6)}`));
});
