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
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { CatalogueBuilder, dayTime, seg } from './catalogue-builder.ts';
import { NOW } from './check.ts';
import { abandonedBranch, linear, pgUpgrade, promotion, recoveryBeforeEveryBackup, recoveryToThePast, twoPromotions } from './scenarios.ts';

function folded(c: Catalogue): Catalogue {
  const out = migrateCatalogue({ ...c, format: 1 as never });
  if (out.walRuns.length === 0) throw new Error('nothing was folded');
  return out;
}

/** A plan's objects without generations, which folding turns into an upper bound. */
function decisions(objects: readonly PlannedObject[]): string[] {
  return objects.map((o) => `${o.key} ${o.code}`);
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
];

for (const [title, catalogue, policy] of cases) {
  test(`retention plans the same over folded segments: ${title}`, (t) => {
    const plain = planRetention(catalogue, policy, NOW);
    const runs = planRetention(folded(catalogue), policy, NOW);
    t.deepEqual(decisions(runs.delete), decisions(plain.delete));
    t.deepEqual(decisions(runs.keep).sort(), decisions(plain.keep).sort());
    t.deepEqual(runs.window, plain.window);
    t.deepEqual(runs.warnings, plain.warnings);
    // A folded segment is deleted at whatever generation is live, up to its run's.
    for (const o of runs.delete.filter((d) => /^wal\/[0-9A-F]{24}$/.test(d.key))) {
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
