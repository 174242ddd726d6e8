/**
 * Retention planning: which objects of the repository a policy lets go, and
 * why every other one stays. Pure and deterministic: the same catalogue,
 * policy and time always give the same plan, in the same order. The prune
 * function and `gcwal delete` execute it (deleting exactly the planned
 * generations); planning again over the catalogue once the deletes are
 * applied deletes nothing more.
 *
 * The rules, in the order they protect:
 * - an object still pending validation is never deleted, nor a backup owning one;
 * - anything with a time after `now` (clock skew) is kept and counted as the newest;
 * - nothing at all is deleted unless a kept backup is restorable (valid, of the
 *   repository's cluster, with every WAL segment from start to stop valid);
 * - a backup of another cluster (system identifier), and every backup newer
 *   than it, is kept with its WAL (a timeline reset after pg_upgrade);
 * - the newest `retainFull` restorable backups are kept, and the newest
 *   restorable backup stopped at or before now − `retainDays` with all newer;
 *   every backup newer than the oldest kept restorable one (the anchor) is kept;
 * - WAL a kept backup may replay (from its start segment, on its timeline and
 *   every higher one) is kept, as is WAL not older than the anchor (on its
 *   timeline: from its start segment; elsewhere: created since it started)
 *   and WAL created within `walRetainDays`; history files follow their timelines.
 */
import { walEntry } from '../catalogue/runs.ts';
import type { Catalogue } from '../catalogue/types.ts';
import { InvalidInputError } from '../errors.ts';
import { assessBackups } from './backups.ts';
import { decideBackups } from './backup-decide.ts';
import { daysBefore, validateRetentionPolicy } from './policy.ts';
import { selectBackups } from './select.ts';
import type { PlannedObject, RetentionPlan, RetentionPolicy, RetentionReasonCount, RetentionWindow } from './types.ts';
import { decideWal } from './wal-decide.ts';
import { objectsByTimeline, walItems } from './wal-items.ts';

export type * from './types.ts';
export { validateRetentionPolicy } from './policy.ts';

function byKey(a: PlannedObject, b: PlannedObject): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

// backup.json first: once it is gone the backup is invisible to list and
// restore, so an interrupted prune never leaves a backup that looks whole.
// History files last: they outlive the segments of their timeline.
function deletePhase(o: PlannedObject): number {
  switch (o.kind) {
    case 'backup':
      return 0;
    case 'part':
    case 'manifest':
    case 'backup-object':
      return 1;
    case 'history':
      return 3;
    default:
      return 2;
  }
}

function countReasons(keep: readonly PlannedObject[], del: readonly PlannedObject[]): RetentionReasonCount[] {
  const counts = new Map<string, RetentionReasonCount>();
  for (const [action, list] of [
    ['keep', keep],
    ['delete', del],
  ] as const) {
    for (const o of list) {
      const id = `${action}\0${o.code}`;
      const row = counts.get(id) ?? { action, code: o.code, objects: 0 };
      row.objects += o.count ?? 1;
      counts.set(id, row);
    }
  }
  return [...counts.values()].sort((a, b) => (a.action !== b.action ? (a.action === 'delete' ? -1 : 1) : a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
}

/**
 * Plan what `policy` deletes from the repository `catalogue` describes, as
 * of `now`. Throws UsageError for a policy that makes no sense (see
 * validateRetentionPolicy) and InvalidInputError for an invalid `now`; never
 * throws for anything in the catalogue (what it cannot make sense of, it keeps).
 */
export function planRetention(catalogue: Catalogue, policy: RetentionPolicy, now: Date): RetentionPlan {
  validateRetentionPolicy(policy);
  const nowMs = now.getTime();
  if (!Number.isFinite(nowMs)) throw new InvalidInputError('the time to plan retention at is not a valid date', 'pass the current time as a Date');
  const cutoff = daysBefore(now, policy.retainDays);
  const walFrom = daysBefore(now, policy.walRetainDays);
  const { backups, clusterId } = assessBackups(catalogue, now);
  const items = walItems(catalogue);
  const sel = selectBackups(backups, policy, cutoff?.getTime(), objectsByTimeline(items));

  const warnings: string[] = [];
  if (catalogue.systemIdentifier === undefined && clusterId !== undefined) {
    warnings.push(`the catalogue has no system identifier yet; the oldest backup's (${clusterId}) is taken as the repository's`);
  }
  if (catalogue.walSegmentSize === undefined && backups.length > 0) {
    warnings.push("the catalogue does not know the wal segment size yet, so no backup's wal can be checked");
  }
  warnings.push(...sel.warnings);

  const ctx = { catalogue, policy, nowMs, cutoffMs: cutoff?.getTime() };
  const decided = decideBackups(backups, sel, ctx);
  warnings.push(...decided.warnings);
  const kept = backups.filter((_, i) => decided.decisions[i].action === 'keep');
  const anchor = sel.anchor === undefined ? undefined : backups[sel.anchor];
  const anchorTimeMs = anchor ? Math.min(anchor.startMs, Date.parse(walEntry(catalogue, anchor.backup.startWalSegment)?.created ?? '')) : NaN;
  const walObjects = decideWal(items, { nowMs, walFromMs: walFrom?.getTime(), walRetainDays: policy.walRetainDays, anchor, anchorTimeMs, kept });

  const all = [...decided.objects, ...walObjects];
  const isDelete = (o: PlannedObject) => o.code === 'superseded-backup' || o.code === 'superseded-wal' || o.code === 'superseded-history';
  const keep = all.filter((o) => !isDelete(o)).sort(byKey);
  const del = all.filter(isDelete).sort((a, b) => deletePhase(a) - deletePhase(b) || byKey(a, b));

  const window: RetentionWindow = {
    ...(anchor ? { backup: anchor.backup.name, from: anchor.backup.stopTime, fromLsn: anchor.backup.stopLsn, timeline: anchor.timeline } : {}),
    ...(cutoff ? { requestedFrom: cutoff.toISOString() } : {}),
    ...(walFrom ? { walFrom: walFrom.toISOString() } : {}),
  };
  return {
    keep,
    delete: del,
    backups: decided.decisions,
    reasons: countReasons(keep, del),
    keptBackups: decided.decisions.filter((d) => d.action === 'keep').map((d) => d.name),
    deletedBackups: decided.decisions.filter((d) => d.action === 'delete').map((d) => d.name),
    window,
    warnings,
  };
}
