/**
 * Keep or delete each backup and every object it owns. A backup is deleted
 * only when it is older than the oldest kept restorable backup, validated,
 * and none of its objects is pending or from the future: a backup is deleted
 * whole or not at all.
 */
import type { Catalogue } from '../catalogue/types.ts';
import { backupManifestKey, backupMetaKey, backupNameFromKey, backupPrefix } from '../layout.ts';
import type { AssessedBackup } from './backups.ts';
import type { BackupSelection } from './select.ts';
import type { PlannedBackup, PlannedObject, PlannedObjectKind, RetentionPolicy } from './types.ts';

/** What the backup decisions depend on. */
export interface BackupDecisionContext {
  catalogue: Catalogue;
  policy: RetentionPolicy;
  nowMs: number;
  cutoffMs?: number;
}

function objectKind(key: string, name: string, catalogue: Catalogue): PlannedObjectKind {
  if (key === backupMetaKey(name)) return 'backup';
  if (key === backupManifestKey(name)) return 'manifest';
  if (catalogue.parts[key] || /\/part_\d+\.tar$/.test(key)) return 'part';
  return 'backup-object';
}

type Decision = Pick<PlannedBackup, 'action' | 'code' | 'reason'>;

function keptReason(a: AssessedBackup, backups: readonly AssessedBackup[], sel: BackupSelection, ctx: BackupDecisionContext): Decision | undefined {
  const keep = (code: Decision['code'], reason: string): Decision => ({ action: 'keep', code, reason });
  const i = a.index;
  if (a.future) return keep('future', `its start or stop time is after now or unreadable (clock skew): treated as the newest backup`);
  if (sel.foreignFrom !== undefined && i >= sel.foreignFrom) {
    return a.ownCluster
      ? keep('other-cluster', `newer than backup ${backups[sel.foreignFrom].backup.name} of another cluster: never deleted`)
      : keep('other-cluster', `belongs to another cluster (system identifier ${a.backup.systemIdentifier}): never deleted`);
  }
  if (sel.anchor === undefined) return keep('no-restorable-backup', 'nothing is deleted while no kept backup is restorable');
  if (i < sel.keepFrom) return undefined;
  const anchorName = backups[sel.anchor].backup.name;
  if (!a.restorable)
    return keep('newer-than-restorable', `not restorable (${a.problem}) but newer than backup ${anchorName}, the oldest kept restorable backup`);
  if (sel.fullFrom !== undefined && i >= sel.fullFrom) return keep('retain-full', `one of the newest ${ctx.policy.retainFull} restorable backups`);
  if (sel.daysFrom !== undefined && i >= sel.daysFrom) {
    return keep(
      'retain-days',
      ctx.cutoffMs !== undefined && a.stopMs <= ctx.cutoffMs
        ? `the newest restorable backup stopped before ${new Date(ctx.cutoffMs).toISOString()}: needed for the start of the ${ctx.policy.retainDays}-day window`
        : `restorable and within the ${ctx.policy.retainDays}-day window`,
    );
  }
  return keep('timeline-branch', sel.branch.get(i) ?? `newer than backup ${anchorName}, kept to reach a timeline that branched off earlier`);
}

function olderDecision(
  a: AssessedBackup,
  parts: readonly string[],
  sel: BackupSelection,
  backups: readonly AssessedBackup[],
  ctx: BackupDecisionContext,
): Decision {
  if (a.backup.state === 'pending') return { action: 'keep', code: 'pending', reason: 'not validated yet: never deleted' };
  for (const key of parts) {
    const part = ctx.catalogue.parts[key];
    if (part.state === 'pending') return { action: 'keep', code: 'pending', reason: `its part ${key} is not validated yet: the backup is kept whole` };
    if (!(Date.parse(part.created) <= ctx.nowMs))
      return { action: 'keep', code: 'future', reason: `its part ${key} was created after now (clock skew): the backup is kept whole` };
  }
  return { action: 'delete', code: 'superseded-backup', reason: `older than backup ${backups[sel.anchor!].backup.name}, the oldest kept restorable backup` };
}

/**
 * Keep every ancestor of a kept incremental backup (its parent, the
 * parent's parent, up to the full backup): restoring it rebuilds files from
 * all of them, so a chain is deleted only as a whole. Newest first, so an
 * ancestor kept here keeps its own ancestors too.
 */
function keepChains(backups: readonly AssessedBackup[], decisions: Decision[]): Decision[] {
  const index = new Map(backups.map((a, i) => [a.backup.name, i]));
  for (let i = backups.length - 1; i >= 0; i--) {
    const parent = backups[i].backup.parent;
    if (decisions[i].action !== 'keep' || parent === undefined) continue;
    const p = index.get(parent);
    if (p === undefined || decisions[p].action === 'keep') continue;
    decisions[p] = {
      action: 'keep',
      code: 'chain-parent',
      reason: `the parent of kept incremental backup ${backups[i].backup.name}, which is restored from its whole chain`,
    };
  }
  return decisions;
}

/**
 * Decide every backup (in `backups` order) and list the objects each owns:
 * the keys it records under its own folder, its backup.json, and every part
 * the catalogue has under its folder. Parts under a folder without a backup
 * are kept. Keys a backup records outside its folder are ignored with a
 * warning: deleting a backup never reaches beyond it.
 */
export function decideBackups(
  backups: readonly AssessedBackup[],
  sel: BackupSelection,
  ctx: BackupDecisionContext,
): { decisions: PlannedBackup[]; objects: PlannedObject[]; warnings: string[] } {
  const warnings: string[] = [];
  const partsByBackup = new Map<string, string[]>();
  const objects: PlannedObject[] = [];
  for (const [key, part] of Object.entries(ctx.catalogue.parts)) {
    const name = backupNameFromKey(key);
    if (name !== undefined && ctx.catalogue.backups[name]) {
      let list = partsByBackup.get(name);
      if (!list) partsByBackup.set(name, (list = []));
      list.push(key);
    } else {
      objects.push({
        key,
        generation: part.generation,
        kind: 'part',
        ...(name ? { backup: name } : {}),
        code: 'orphan-part',
        reason: 'no backup.json under its folder (a backup still running or one that failed): left alone',
      });
    }
  }
  const decided = keepChains(
    backups,
    backups.map((a) => keptReason(a, backups, sel, ctx) ?? olderDecision(a, (partsByBackup.get(a.backup.name) ?? []).sort(), sel, backups, ctx)),
  );
  const decisions: PlannedBackup[] = [];
  for (const [i, a] of backups.entries()) {
    const name = a.backup.name;
    const parts = (partsByBackup.get(name) ?? []).sort();
    const decision = decided[i];
    decisions.push({ name, ...decision, restorable: a.restorable, ...(a.problem ? { problem: a.problem } : {}) });
    const prefix = backupPrefix(name);
    const outside = a.backup.keys.filter((k) => !k.startsWith(prefix));
    if (outside.length > 0)
      warnings.push(
        `backup ${name} lists keys outside its folder, left alone: ${outside.slice(0, 3).join(', ')}${outside.length > 3 ? ` and ${outside.length - 3} more` : ''}`,
      );
    const keys = new Set([backupMetaKey(name), ...a.backup.keys.filter((k) => k.startsWith(prefix)), ...parts]);
    for (const key of keys) {
      const generation = key === backupMetaKey(name) ? a.backup.generation : ctx.catalogue.parts[key]?.generation;
      objects.push({
        key,
        ...(generation !== undefined ? { generation } : {}),
        kind: objectKind(key, name, ctx.catalogue),
        backup: name,
        code: decision.code,
        reason: decision.reason,
      });
    }
  }
  return { decisions, objects, warnings };
}
