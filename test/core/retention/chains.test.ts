/** Retention with chains of incremental backups: a chain is kept or deleted as a unit. */
import test from 'ava';
import type { Catalogue } from '../../../core/catalogue/types.ts';
import { planRetention } from '../../../core/retention/plan.ts';
import { CatalogueBuilder, segKeys } from './catalogue-builder.ts';
import { meta, NOW, runRows } from './check.ts';
import { bk, label } from './scenarios.ts';

/**
 * Segments 1 to 30 of timeline 1 and a backup starting in each of
 * `starts`; `parents` maps a backup's start to its parent's start (an
 * incremental backup).
 */
function chains(starts: number[], parents: Record<number, number>, edit: (c: Catalogue) => void = () => {}): Catalogue {
  const b = new CatalogueBuilder().segments(1, 1, 30);
  for (const n of starts) b.backup(1, n);
  return b
    .edit((c) => {
      for (const [child, parent] of Object.entries(parents)) c.backups[bk(1, Number(child))].parent = bk(1, parent);
      edit(c);
    })
    .build();
}

runRows([
  {
    title: 'retain-full 1 on a chain keeps the last incremental, every backup it is rebuilt from and the wal from the full backup on',
    catalogue: chains([5, 12, 20], { 12: 5, 20: 12 }),
    policy: { retainFull: 1 },
    kept: [bk(1, 5), bk(1, 12), bk(1, 20)],
    deleted: [],
    deletedWal: segKeys(1, 1, 4),
    codes: { [meta(bk(1, 5))]: 'chain-parent', [meta(bk(1, 12))]: 'chain-parent', [meta(bk(1, 20))]: 'retain-full' },
    window: { backup: bk(1, 20) },
    warnings: [],
  },
  {
    title: 'retain-full 2 deletes an older chain whole once two newer backups are kept',
    catalogue: chains([5, 12, 20, 27], { 12: 5, 27: 20 }),
    policy: { retainFull: 2 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 5))]: 'superseded-backup', [meta(bk(1, 12))]: 'superseded-backup', [meta(bk(1, 20))]: 'retain-full' },
    warnings: [],
  },
  {
    title: 'retain-full 1 keeps the full backup of the newest incremental and deletes the older chain',
    catalogue: chains([5, 12, 20, 27], { 12: 5, 27: 20 }),
    policy: { retainFull: 1 },
    kept: [bk(1, 20), bk(1, 27)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    codes: { [meta(bk(1, 20))]: 'chain-parent', [meta(bk(1, 27))]: 'retain-full' },
    window: { backup: bk(1, 27) },
    warnings: [],
  },
  {
    title: 'an incremental whose full backup is corrupt is not restorable, and the older chain goes once a newer backup is kept',
    catalogue: chains([5, 12, 20], { 12: 5 }, (c) => (c.backups[bk(1, 5)].state = 'corrupt')),
    policy: { retainFull: 1 },
    kept: [bk(1, 20)],
    deleted: [bk(1, 5), bk(1, 12)],
    deletedWal: [...segKeys(1, 1, 19), label(1, 5), label(1, 12)],
    warnings: [],
  },
]);

test('an incremental backup whose parent is missing or not restorable is not restorable, and the plan says why', (t) => {
  const missing = planRetention(chains([12, 20], { 12: 5 }), { retainFull: 5 }, NOW);
  t.like(missing.backups[0], { name: bk(1, 12), restorable: false, problem: `its parent backup ${bk(1, 5)} is missing` });
  const corrupt = planRetention(
    chains([5, 12, 20], { 12: 5, 20: 12 }, (c) => (c.backups[bk(1, 5)].state = 'corrupt')),
    { retainFull: 5 },
    NOW,
  );
  t.like(corrupt.backups[1], { name: bk(1, 12), restorable: false, problem: `its parent backup ${bk(1, 5)} is not restorable (it is corrupt)` });
  t.like(corrupt.backups[2], {
    name: bk(1, 20),
    restorable: false,
    problem: `its parent backup ${bk(1, 12)} is not restorable (its parent backup ${bk(1, 5)} is not restorable (it is corrupt))`,
  });
});
