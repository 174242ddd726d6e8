import { AuthError, ExitCode, UsageError } from '../../core/errors.ts';
import { executeRetentionPlan, type ExecutionReport } from '../../core/retention/execute.ts';
import { plannedCount } from '../../core/retention/planned.ts';
import { planRetention, validateRetentionPolicy, type RetentionPolicy } from '../../core/retention/plan.ts';
import { loadCatalogue } from '../catalogue/load.ts';
import { planOverListing, type AgentValidation } from '../retention/listing.ts';
import { buildDeleteReport, formatDeleteOutcome, formatDeletePlan } from '../retention/report.ts';
import type { Command } from './types.ts';

const PERMISSION_HINT =
  "the agent's own identity normally may not delete: run gcwal delete as an identity with storage.objects.delete on the bucket (e.g. with GCWAL_IMPERSONATE_SERVICE_ACCOUNT), or let the prune function apply the policy";

/** `gcwal delete --retain-full N | --retain-days D [--wal-retain-days W] [--confirm] [--json]`. */
export const deleteCommand: Command = {
  name: 'delete',
  summary: 'apply a retention policy: a dry run unless --confirm',
  usage: 'gcwal delete --retain-full N | --retain-days D [--wal-retain-days W] [--confirm] [--json]',
  details: `
Plans what a retention policy lets go, with the same planner as the
pipeline's prune function, and prints the plan: each backup kept or deleted
and why, the WAL to delete, counts, the recoverable window left, warnings.
Nothing is deleted unless --confirm is given.

The policy (each also read from its variable, as the functions do):
  --retain-full N       (GCWAL_RETAIN_FULL) keep the newest N restorable backups
  --retain-days D       (GCWAL_RETAIN_DAYS) keep every backup needed to restore
                        any point of the last D days
  --wal-retain-days W   (GCWAL_WAL_RETAIN_DAYS) also keep all WAL of the last W
                        days (W at least D)
At least one of --retain-full and --retain-days is required; with both, the
union is kept. The newest restorable backup, WAL any kept backup or any point
of the window needs, and anything not proven superseded are never deleted.

With the pipeline's catalogue (in the repository or GCWAL_CATALOGUE_REPO) the
plan uses its validation states; objects still pending validation are kept.
Without one, the repository is listed, and since nothing in a listing is
validated the agent reads, itself, every backup the plan keeps as
restorable and the WAL from its start to its stop (a kept backup found
damaged stops counting and an older one is kept instead). What it deletes is
older than all of those and is not read. The output says which it did.

Each object is deleted only if it is still the generation planned; one that
changed meanwhile is skipped and reported. A backup's backup.json goes
first, so an interrupted run never leaves a backup that looks whole; running
the command again finishes the job.

The agent's identity usually has no delete permission (it holds
roles/storage.objectCreator and objectViewer): a refused delete exits 8; use
an identity with storage.objects.delete, or let the prune function apply the
policy.

Exit codes: 0 planned (and with --confirm, deleted); 2 no or a bad policy;
6 a damaged catalogue; 7 storage errors; 8 permission denied.`,
  options: {
    confirm: { type: 'boolean', description: 'delete what the plan lists (without it: a dry run)' },
    json: { type: 'boolean', description: 'print the plan and outcome as one JSON object' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    const { retainFull, retainDays, walRetainDays } = ctx.config.retention;
    if (retainFull === undefined && retainDays === undefined) {
      throw new UsageError(
        'delete needs a retention policy: --retain-full N or --retain-days D',
        'e.g. gcwal delete --retain-full 2, a dry run until you add --confirm',
      );
    }
    const policy: RetentionPolicy = { retainFull, retainDays, walRetainDays };
    validateRetentionPolicy(policy);
    const confirm = options.confirm === true;
    const now = new Date();
    const storage = await ctx.storage();
    const loaded = await loadCatalogue(ctx, now);

    let plan;
    let catalogue = loaded.catalogue;
    let validation: AgentValidation | undefined;
    if (loaded.source === 'listing') {
      ({ plan, catalogue, validation } = await planOverListing(storage, loaded.catalogue, policy, now, { signal: ctx.signal, log: ctx.log }));
    } else {
      plan = planRetention(loaded.catalogue, policy, now);
    }
    const report = (execution?: ExecutionReport) =>
      buildDeleteReport({
        repository: storage.url,
        source: loaded.source,
        catalogueLocation: loaded.location,
        catalogue,
        policy,
        plan,
        validation,
        execution,
      });

    const planned = report();
    if (!confirm) {
      ctx.stdout.write(options.json ? JSON.stringify(planned, null, 2) + '\n' : formatDeletePlan(planned) + formatDeleteOutcome(planned));
      return ExitCode.ok;
    }
    const deleting = { ...planned, dryRun: false };
    if (!options.json) ctx.stdout.write(formatDeletePlan(deleting));
    let execution: ExecutionReport;
    try {
      execution = await executeRetentionPlan(storage, plan, {
        signal: ctx.signal,
        onDeleted: (o) => ctx.log.debug(`deleted ${o.key}`, { reason: o.code }),
      });
    } catch (err) {
      const done = (err as { report?: ExecutionReport }).report?.deleted.length ?? 0;
      if (err instanceof AuthError) {
        throw new AuthError(`delete stopped after ${done} of ${plannedCount(plan.delete)} objects: ${err.message}`, PERMISSION_HINT, { cause: err });
      }
      if (done > 0) ctx.log.warn(`delete stopped after ${done} of ${plannedCount(plan.delete)} objects; run it again to finish`);
      throw err;
    }
    const finished = report(execution);
    ctx.log.info(`deleted ${execution.deleted.length} objects`, { skipped: execution.skipped.length, backups: plan.deletedBackups.length });
    ctx.stdout.write(options.json ? JSON.stringify(finished, null, 2) + '\n' : formatDeleteOutcome(finished));
    return ExitCode.ok;
  },
};
