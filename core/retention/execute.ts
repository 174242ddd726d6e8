/**
 * Carrying out a retention plan: delete exactly the planned generations, in
 * the plan's order (each backup's backup.json first, so an interrupted run
 * never leaves a backup that looks whole). Shared by the prune function and
 * `gcwal delete --confirm`.
 */
import { compareGenerations } from '../catalogue/keys.ts';
import { PreconditionFailedError } from '../errors.ts';
import type { Storage } from '../storage/types.ts';
import { expandPlanned } from './planned.ts';
import type { PlannedObject, RetentionPlan } from './types.ts';

export interface ExecutionReport {
  /** deleted (or already gone) */
  deleted: PlannedObject[];
  /** left alone because the object changed after planning, or its backup's metadata did */
  skipped: { object: PlannedObject; why: string }[];
}

export interface ExecuteOptions {
  signal?: AbortSignal;
  /** called after each delete, e.g. to show progress */
  onDeleted?: (object: PlannedObject) => void;
}

/**
 * Delete what `plan.delete` lists, each segment of a range (plannedObjects) on its own, reported one by one. An object whose live generation is not
 * the planned one was replaced after planning: it is skipped, and so is the
 * rest of its backup when it was the backup's metadata. A missing object
 * counts as deleted (idempotent: running a plan twice is harmless). Any other
 * failure (network, permission) stops the run and is rethrown, with the
 * report of what was already done attached as the error's `report`
 * property, so the caller can still record it.
 */
export async function executeRetentionPlan(storage: Storage, plan: RetentionPlan, options: ExecuteOptions = {}): Promise<ExecutionReport> {
  const report: ExecutionReport = { deleted: [], skipped: [] };
  const abandoned = new Set<string>();
  // A range (a run's segments planned alike) is deleted segment by segment, listed as it goes.
  for (const object of expandPlanned(plan.delete)) {
    options.signal?.throwIfAborted();
    if (object.backup !== undefined && abandoned.has(object.backup)) {
      report.skipped.push({ object, why: `backup ${object.backup} changed after planning` });
      continue;
    }
    try {
      let planned = object;
      if (object.generation === undefined && object.generationAtMost !== undefined) {
        // A folded segment: delete the live generation unless it was replaced since its run was folded.
        const live = await storage.stat(object.key, { signal: options.signal });
        if (live && compareGenerations(live.generation, object.generationAtMost) > 0) {
          report.skipped.push({ object, why: `${object.key} changed after planning` });
          continue;
        }
        if (live) planned = { ...object, generation: live.generation };
      }
      await storage.delete(planned.key, { signal: options.signal, ...(planned.generation !== undefined ? { ifGenerationMatch: planned.generation } : {}) });
      report.deleted.push(planned);
      options.onDeleted?.(planned);
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        report.skipped.push({ object, why: `${object.key} changed after planning` });
        if (object.kind === 'backup' && object.backup !== undefined) abandoned.add(object.backup);
        continue;
      }
      if (err instanceof Error) (err as Error & { report?: ExecutionReport }).report = report;
      throw err;
    }
  }
  return report;
}
