/**
 * backup-fetch's check of a --target-time or --target-name against the
 * pipeline's catalogue (core/restore/archive-target.ts), run before anything
 * is written. Without a catalogue (no pipeline) or with one that cannot be
 * read it says it could not check, and the restore goes on.
 */
import { readCatalogue } from '../../core/catalogue/store.ts';
import { restorableRecords } from '../../core/catalogue/restorable.ts';
import { UsageError } from '../../core/errors.ts';
import { checkTargetAgainstArchive } from '../../core/restore/archive-target.ts';
import type { RecoveryPlan } from '../../core/restore/recovery-config.ts';
import { catalogueStorage } from '../catalogue/load.ts';
import type { CommandContext } from '../context.ts';

/**
 * Throw UsageError (exit 2) for a target the archive cannot reach, unless
 * `force` (then warn); warn when it cannot be told.
 */
export async function checkRecoveryTarget(
  ctx: Pick<CommandContext, 'config' | 'storage' | 'log' | 'signal'>,
  plan: RecoveryPlan | undefined,
  force: boolean,
): Promise<void> {
  const target = plan?.target;
  if (target?.kind !== 'time' && target?.kind !== 'name') return;
  let read;
  try {
    read = await readCatalogue(await catalogueStorage(ctx), { signal: ctx.signal });
  } catch (err) {
    ctx.log.warn(`could not check the recovery target against the pipeline's catalogue: ${(err as Error).message}`);
    return;
  }
  if (read.generation === '0') {
    ctx.log.warn('no pipeline catalogue: the recovery target is not checked against the archived WAL');
    return;
  }
  const check = checkTargetAgainstArchive(restorableRecords(read.catalogue), target);
  if (check.refusal && !force) throw new UsageError(check.refusal.message, check.refusal.hint);
  if (check.refusal) ctx.log.warn(`${check.refusal.message} (going on: --force-target)`);
  if (check.warning) ctx.log.warn(check.warning);
}
