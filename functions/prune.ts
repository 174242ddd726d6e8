/**
 * prune (Pub/Sub, from Cloud Scheduler): plan retention over the catalogue
 * with the configured policy (core/retention/plan.ts), delete exactly the
 * planned generations unless GCWAL_PRUNE_DRY_RUN, record the deletions in the
 * catalogue and publish what was deleted and why on the events topic.
 */
import { cloudEvent } from '@google-cloud/functions-framework';
import type { PipelineEventMessage } from '../core/alerts/types.ts';
import { readCatalogue } from '../core/catalogue/store.ts';
import type { CatalogueEvent } from '../core/catalogue/types.ts';
import { executeRetentionPlan, type ExecutionReport } from '../core/retention/execute.ts';
import { planRetention } from '../core/retention/plan.ts';
import { expandPlanned, plannedCount } from '../core/retention/planned.ts';
import { reportMalformedEvent, type MalformedOutcome } from './lib/malformed.ts';
import { CatalogueOutbox } from './lib/catalogue-outbox.ts';
import { createRuntime, lazyRuntime, type Runtime } from './lib/runtime.ts';
import { checkSchedulerEvent } from './lib/scheduler-event.ts';
import type { IncomingEvent } from './lib/storage-event.ts';

type PrunedMessage = Extract<PipelineEventMessage, { kind: 'pruned' }>;
export type PruneOutcome = MalformedOutcome | { status: 'pruned'; message: PrunedMessage };

/**
 * Build the handler. A scheduler message on its topic triggers one run
 * (anything else is reported as malformed and runs nothing); a duplicate
 * delivery plans again over the updated catalogue and finds nothing more to
 * delete. Rejects on storage or Pub/Sub errors after recording (as far as it
 * can) and publishing what it did delete.
 */
export function makePruneHandler(runtime: () => Runtime): (event: IncomingEvent) => Promise<PruneOutcome> {
  let outbox: CatalogueOutbox | undefined;
  return async (event) => {
    const rt = runtime();
    outbox ??= new CatalogueOutbox(rt);
    try {
      checkSchedulerEvent(event, 'prune');
    } catch (err) {
      return reportMalformedEvent(rt, outbox, 'prune', event, err);
    }
    const storage = await rt.storage();
    const { catalogue } = await readCatalogue(await rt.catalogueStorage());
    const now = rt.now();
    const plan = planRetention(catalogue, rt.config.retention, now);
    let report: ExecutionReport = { deleted: [], skipped: [] };
    let failure: unknown;
    if (!rt.config.pruneDryRun) {
      try {
        report = await executeRetentionPlan(storage, plan);
      } catch (err) {
        failure = err;
        report = (err as { report?: ExecutionReport }).report ?? report;
      }
      const events: CatalogueEvent[] = report.deleted
        .filter((o) => o.generation !== undefined)
        .map((o) => ({ type: 'deleted', key: o.key, generation: o.generation!, time: rt.now().toISOString() }));
      // What was deleted is announced even when recording it (or an alert it
      // resolves) fails: a redelivery would find nothing left to report.
      if (events.length > 0) {
        try {
          await outbox.record(events);
        } catch (err) {
          failure ??= err;
        }
      }
    }
    const deletedSet = new Set(report.deleted.map((o) => o.key));
    const message: PrunedMessage = {
      format: 1,
      kind: 'pruned',
      repository: rt.config.repo,
      dryRun: rt.config.pruneDryRun,
      deleted: (rt.config.pruneDryRun ? [...expandPlanned(plan.delete)] : report.deleted).map((o) => ({ key: o.key, reason: o.reason })),
      skipped: report.skipped.map((s) => ({ key: s.object.key, reason: s.why })),
      deletedBackups: plan.deletedBackups.filter(
        (b) => rt.config.pruneDryRun || plan.delete.some((o) => o.backup === b && o.kind === 'backup' && deletedSet.has(o.key)),
      ),
      keptBackups: plan.keptBackups,
      kept: plannedCount(plan.keep),
      warnings: plan.warnings,
      time: rt.now().toISOString(),
    };
    await rt.publisher.publishJson(rt.config.eventsTopic, message, { kind: 'pruned', dryRun: String(message.dryRun) });
    rt.log.log(
      plan.warnings.length > 0 ? 'WARNING' : 'INFO',
      `prune ${message.dryRun ? 'would delete' : 'deleted'} ${message.deleted.length} objects (${message.deletedBackups.length} backups), kept ${message.kept}`,
      { warnings: plan.warnings, skipped: message.skipped.length },
    );
    if (failure !== undefined) throw failure;
    return { status: 'pruned', message };
  };
}

cloudEvent('prune', makePruneHandler(lazyRuntime(() => createRuntime(process.env))));
