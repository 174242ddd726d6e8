/**
 * What a function does with an event it cannot read (MalformedEventError
 * from the event parsers): log it, raise its one malformed-event alert
 * through the catalogue (core/alerts/malformed.ts: keyed by the event id, so
 * a redelivery announces nothing new), and return, so the platform counts
 * the event as handled instead of retrying it for a day. Any other error is
 * rethrown: storage, auth and Pub/Sub failures are worth a retry.
 */
import { excerpt, malformedEventAlert } from '../../core/alerts/malformed.ts';
import type { CatalogueOutbox } from './catalogue-outbox.ts';
import type { Runtime } from './runtime.ts';
import { MalformedEventError, type IncomingEvent } from './storage-event.ts';

/** A handler's outcome for an event it dropped. */
export interface MalformedOutcome {
  status: 'malformed';
  problem: string;
  /** the id of the alert raised (or already open) for it */
  alert: string;
}

/** Report `event` if `err` says it is malformed; rethrow `err` otherwise. */
export async function reportMalformedEvent(rt: Runtime, outbox: CatalogueOutbox, fn: string, event: IncomingEvent, err: unknown): Promise<MalformedOutcome> {
  if (!(err instanceof MalformedEventError)) throw err;
  const alert = malformedEventAlert(fn, event, err.message, rt.now());
  rt.log.log('ERROR', `dropped a malformed event: ${err.message}`, { alert: alert.id, hint: err.hint, event: excerpt(event) });
  await outbox.raise(alert);
  return { status: 'malformed', problem: err.message, alert: alert.id };
}
