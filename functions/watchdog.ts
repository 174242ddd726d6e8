/**
 * watchdog (Pub/Sub, from Cloud Scheduler): re-evaluate the alerts at the
 * current time — archiving stalled, newest backup too old, objects waiting
 * for validation — and publish what opened or cleared, plus anything a
 * failed or crashed run left in the outbox (once it has waited
 * OUTBOX_CLAIM_MS, see lib/catalogue-outbox.ts). Each run also logs the
 * pipeline's figures as one structured entry, `gcwal metrics` (see
 * core/catalogue/metrics.ts), which terraform's log-based metrics read.
 */
import { cloudEvent } from '@google-cloud/functions-framework';
import { pipelineMetrics } from '../core/catalogue/metrics.ts';
import type { OpenAlert } from '../core/catalogue/types.ts';
import { reportMalformedEvent, type MalformedOutcome } from './lib/malformed.ts';
import { CatalogueOutbox } from './lib/catalogue-outbox.ts';
import { createRuntime, lazyRuntime, type Runtime } from './lib/runtime.ts';
import { checkSchedulerEvent } from './lib/scheduler-event.ts';
import type { IncomingEvent } from './lib/storage-event.ts';

/** The `message` of the metrics entry each run logs (the log-based metrics' filter names it). */
export const METRICS_MESSAGE = 'gcwal metrics';

export type WatchdogOutcome = MalformedOutcome | { status: 'evaluated'; open: OpenAlert[] };

/** Build the handler. Idempotent: a second run at the same time announces nothing new. */
export function makeWatchdogHandler(runtime: () => Runtime): (event: IncomingEvent) => Promise<WatchdogOutcome> {
  let outbox: CatalogueOutbox | undefined;
  return async (event) => {
    const rt = runtime();
    outbox ??= new CatalogueOutbox(rt);
    try {
      checkSchedulerEvent(event, 'watchdog');
    } catch (err) {
      return reportMalformedEvent(rt, outbox, 'watchdog', event, err);
    }
    // record() also publishes the outbox: what this run queued and what a
    // failed instance left behind longer than the claim.
    const update = await outbox.record([]);
    const open = Object.values(update.catalogue.alerts);
    rt.log.log(open.length > 0 ? 'WARNING' : 'INFO', `watchdog: ${open.length} open alerts`, { open: open.map((a) => a.id) });
    rt.log.log('INFO', METRICS_MESSAGE, { repository: rt.config.repo, metrics: pipelineMetrics(update.catalogue, rt.now()) });
    return { status: 'evaluated', open };
  };
}

cloudEvent('watchdog', makeWatchdogHandler(lazyRuntime(() => createRuntime(process.env))));
