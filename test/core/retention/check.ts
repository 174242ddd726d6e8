/**
 * Runs a table of retention scenarios: each row's expected backups, deleted
 * WAL, reason codes, window and warnings, and for every row the invariants
 * any plan must hold (each object accounted for once, exactly the recorded
 * generations deleted, never a pending object, the same plan whatever order
 * the catalogue lists objects in, and nothing more to delete once applied).
 */
import test from 'ava';
import type { Catalogue } from '../../../core/catalogue/types.ts';
import { backupManifestKey, backupMetaKey, backupNameFromKey, walFileNameFromKey } from '../../../core/layout.ts';
import { planRetention, type RetentionPlan, type RetentionPolicy, type RetentionReasonCode, type RetentionWindow } from '../../../core/retention/plan.ts';
import { applyDeletes, catalogueKeys, dayDate } from './catalogue-builder.ts';

/** The default planning time: day 31, the day after the scenarios' last segment. */
export const NOW = dayDate(31);

export interface Row {
  title: string;
  catalogue: Catalogue;
  policy: RetentionPolicy;
  now?: Date;
  kept: string[];
  deleted: string[];
  /** every WAL key the plan deletes */
  deletedWal: string[];
  /** spot checks: key (or backup name) → reason code */
  codes?: Record<string, RetentionReasonCode>;
  window?: Partial<RetentionWindow>;
  /** each must match one warning, and there are exactly this many */
  warnings?: RegExp[];
}

/** The key of a backup's backup.json. */
export const meta = (name: string) => backupMetaKey(name);
/** The key of a file under wal/. */
export const wal = (name: string) => `wal/${name}`;

function find(plan: RetentionPlan, key: string) {
  return plan.keep.find((o) => o.key === key) ?? plan.delete.find((o) => o.key === key) ?? plan.backups.find((b) => b.name === key);
}

function expectations(t: import('ava').ExecutionContext, row: Row, plan: RetentionPlan): void {
  t.deepEqual(plan.keptBackups, row.kept, 'kept backups');
  t.deepEqual(plan.deletedBackups, row.deleted, 'deleted backups');
  t.deepEqual(
    plan.delete
      .filter((o) => o.key.startsWith('wal/'))
      .map((o) => o.key)
      .sort(),
    [...row.deletedWal].sort(),
    'deleted wal',
  );
  const owners = new Set(plan.delete.filter((o) => o.backup !== undefined).map((o) => o.backup));
  t.deepEqual([...owners].sort(), [...row.deleted].sort(), 'objects of exactly the deleted backups are deleted');
  for (const [key, code] of Object.entries(row.codes ?? {})) t.is(find(plan, key)?.code, code, `code of ${key}`);
  if (row.window) {
    if (Object.keys(row.window).length === 0) t.deepEqual(plan.window, {});
    else t.like(plan.window, row.window);
  }
  if (row.warnings) {
    t.is(plan.warnings.length, row.warnings.length, `warnings: ${JSON.stringify(plan.warnings)}`);
    for (const re of row.warnings)
      t.true(
        plan.warnings.some((w) => re.test(w)),
        `a warning matches ${re}`,
      );
  }
}

function invariants(t: import('ava').ExecutionContext, row: Row, plan: RetentionPlan): void {
  const c = row.catalogue;
  const now = row.now ?? NOW;
  const keys = [...plan.keep, ...plan.delete].map((o) => o.key);
  t.deepEqual([...keys].sort(), catalogueKeys(c), 'every object is kept or deleted');
  t.is(new Set(keys).size, keys.length, 'no object is both kept and deleted');
  for (const o of [...plan.keep, ...plan.delete]) t.regex(o.reason, /^[a-z0-9].*[^.]$/, `reason of ${o.key}`);
  for (const o of plan.delete) {
    const walName = walFileNameFromKey(o.key);
    const name = backupNameFromKey(o.key);
    const recorded =
      walName !== undefined ? c.wal[walName]?.generation : o.key === backupMetaKey(name!) ? c.backups[name!].generation : c.parts[o.key]?.generation;
    t.is(o.generation, recorded, `generation of ${o.key}`);
    if (o.key === backupManifestKey(name ?? '')) t.is(o.generation, undefined);
    const state = walName !== undefined ? c.wal[walName].state : (c.parts[o.key]?.state ?? c.backups[name!].state);
    t.not(state, 'pending', `${o.key} is pending`);
  }
  const reversed = <T>(record: Record<string, T>) => Object.fromEntries(Object.entries(record).reverse());
  const shuffled: Catalogue = { ...c, wal: reversed(c.wal), parts: reversed(c.parts), backups: reversed(c.backups) };
  t.deepEqual(planRetention(shuffled, row.policy, now), plan, "the plan does not depend on the catalogue's order");
  const again = planRetention(applyDeletes(c, plan), row.policy, now);
  t.deepEqual(again.delete, [], 'planning again after the deletes deletes nothing more');
  t.deepEqual(again.keptBackups, plan.keptBackups);
  t.deepEqual(
    again.keep.map((o) => o.key),
    plan.keep.map((o) => o.key),
  );
  t.deepEqual(again.window, plan.window);
}

/** Register one test per row. */
export function runRows(rows: readonly Row[]): void {
  for (const row of rows) {
    test(row.title, (t) => {
      const plan = planRetention(row.catalogue, row.policy, row.now ?? NOW);
      expectations(t, row, plan);
      invariants(t, row, plan);
    });
  }
}
