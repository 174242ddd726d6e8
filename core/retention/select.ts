/**
 * Which backups the policy keeps. Backups are ordered oldest first; the kept
 * ones are every backup from `keepFrom` on, and the anchor is the oldest kept
 * restorable one: nothing at or after its start is ever proven superseded.
 */
import type { RetentionPolicy } from './types.ts';
import type { AssessedBackup } from './backups.ts';
import type { TimelineObjects } from './wal-items.ts';

/** The policy's decision over the ordered backups. */
export interface BackupSelection {
  /** backups at this index and after are kept; `backups.length` when none is */
  keepFrom: number;
  /** index of the oldest kept restorable backup; undefined when there is none (then nothing is deleted) */
  anchor?: number;
  /** index of the first backup of another cluster, when there is one */
  foreignFrom?: number;
  /** the lowest index the policy alone keeps by each rule, when it applies */
  fullFrom?: number;
  daysFrom?: number;
  /** backups kept only to reach a timeline that branched before the anchor, with why */
  branch: Map<number, string>;
  warnings: string[];
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Apply the policy to `backups` (as assessBackups orders them). `cutoffMs` is
 * now − retainDays when the policy has retainDays. `objects` are the WAL
 * objects by timeline, used to keep the points of a timeline that branched
 * off before the anchor restorable (after a recovery to an earlier point,
 * the newest timeline can start before the oldest kept backup).
 */
export function selectBackups(
  backups: readonly AssessedBackup[],
  policy: RetentionPolicy,
  cutoffMs: number | undefined,
  objects: TimelineObjects,
): BackupSelection {
  const warnings: string[] = [];
  const restorable = backups.filter((b) => b.restorable).map((b) => b.index);
  const none = backups.length;
  let fullFrom: number | undefined;
  if (policy.retainFull !== undefined && restorable.length > 0) {
    if (restorable.length < policy.retainFull)
      warnings.push(
        `only ${restorable.length} restorable backup${restorable.length === 1 ? '' : 's'}, fewer than retain-full ${policy.retainFull}; all are kept`,
      );
    fullFrom = restorable[Math.max(0, restorable.length - policy.retainFull)];
  }
  let daysFrom: number | undefined;
  if (cutoffMs !== undefined && restorable.length > 0) {
    const before = restorable.filter((i) => backups[i].stopMs <= cutoffMs);
    daysFrom = before.at(-1);
    if (daysFrom === undefined) {
      daysFrom = restorable[0];
      warnings.push(`no restorable backup stopped before ${iso(cutoffMs)}; the earliest restorable point is ${iso(backups[daysFrom].stopMs)}`);
    }
  }
  const foreign = backups.find((b) => !b.ownCluster);
  const foreignFrom = foreign?.index;
  if (foreign) {
    warnings.push(
      `backup ${foreign.backup.name} belongs to another cluster (system identifier ${foreign.backup.systemIdentifier}); it, every newer backup and their wal are never deleted: archive each cluster into its own repository`,
    );
  }
  let keepFrom = Math.min(fullFrom ?? none, daysFrom ?? none, foreignFrom ?? none);
  const branch = new Map<number, string>();
  const firstRestorableFrom = (from: number) => restorable.find((i) => i >= from);
  let anchor = firstRestorableFrom(keepFrom);
  const warned = new Set<number>();
  while (anchor !== undefined) {
    const extended = extendForBranches(backups, keepFrom, anchor, objects, branch, warned, warnings);
    if (extended === undefined) break;
    keepFrom = extended;
    anchor = firstRestorableFrom(keepFrom);
  }
  if (anchor === undefined) {
    if (backups.length === 0) warnings.push('nothing is deleted: the catalogue has no backups');
    else warnings.push('nothing is deleted: no backup the policy would keep is valid with validated wal from its start to its stop');
  }
  return { keepFrom, anchor, foreignFrom, fullFrom, daysFrom, branch, warnings };
}

/**
 * Look for a timeline above the anchor's whose objects start before the
 * anchor's start position and reach into the window (created after the
 * anchor's stop) with no kept restorable backup that can reach them. Return
 * the new keepFrom (the newest older backup that can) after recording why in
 * `branch`, or undefined when nothing needs extending.
 *
 * Without the history files' contents a timeline's parent is unknown, so a
 * backup on a lower timeline that starts no later than the timeline's first
 * object is taken as able to reach it.
 */
function extendForBranches(
  backups: readonly AssessedBackup[],
  keepFrom: number,
  anchor: number,
  objects: TimelineObjects,
  branch: Map<number, string>,
  warned: Set<number>,
  warnings: string[],
): number | undefined {
  const a = backups[anchor];
  const timelines = [...objects.keys()].filter((t) => t > a.timeline).sort((x, y) => x - y);
  for (const timeline of timelines) {
    const list = objects.get(timeline)!;
    const first = list.reduce((min, o) => (o.position < min ? o.position : min), list[0].position);
    if (first >= a.startPosition) continue;
    // A NaN creation time compares false: such an object is treated as recent.
    // A span of a run counts from its first segment in the window.
    const inWindow: bigint[] = [];
    for (const o of list) {
      const position = o.firstCreatedAfter ? o.firstCreatedAfter(a.stopMs) : !(o.createdMs <= a.stopMs) ? o.position : undefined;
      if (position !== undefined) inWindow.push(position);
    }
    if (inWindow.length === 0) continue;
    const firstInWindow = inWindow.reduce((min, p) => (p < min ? p : min), inWindow[0]);
    const reaches = (b: AssessedBackup) =>
      b.restorable && ((b.timeline === timeline && b.startPosition <= firstInWindow) || (b.timeline < timeline && b.startPosition <= first));
    if (backups.slice(keepFrom).some(reaches)) continue;
    for (let i = keepFrom - 1; i >= 0; i--) {
      if (reaches(backups[i])) {
        branch.set(i, `kept to restore points of timeline ${timeline}, which branched off before backup ${a.backup.name}`);
        return i;
      }
    }
    if (!warned.has(timeline)) {
      warned.add(timeline);
      warnings.push(
        `timeline ${timeline} branched off before backup ${a.backup.name} and no restorable backup reaches its first segments; its points before its own first backup cannot be restored`,
      );
    }
  }
  return undefined;
}
