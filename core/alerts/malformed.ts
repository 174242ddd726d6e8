/**
 * The alert for an event a function could not read: data missing or not an
 * object resource, fields of the wrong type, a bucket that is not the
 * repository's, a trigger message that is not the scheduler's. Such an event
 * cannot become valid by being delivered again, so the function acknowledges
 * it and raises this alert instead of failing into a day of retries.
 *
 * One alert per event: its id is the event's, so a redelivery of the same
 * event (to any instance, or to the other function on the same trigger) is
 * the incident already open and announces nothing. Nothing clears such an
 * incident, so it stays open (and in `gcwal status`) for
 * MALFORMED_EVENT_KEEP_SECONDS, as long as Eventarc retries a delivery, and
 * then resolves.
 */
import { createHash } from 'node:crypto';
import type { OpenAlert } from '../catalogue/types.ts';

/** How long a malformed-event alert stays open: a day, Eventarc's retry window. */
export const MALFORMED_EVENT_KEEP_SECONDS = 24 * 3600;

/**
 * At most this many malformed-event alerts are open at once: a trigger
 * misconfigured on a busy bucket must not page once per object or grow the
 * catalogue without bound. Beyond it, events are only logged.
 */
export const MALFORMED_EVENT_MAX_OPEN = 50;

/** At most this many characters of the event are kept in the alert. */
const EXCERPT_CHARS = 500;

/** The parts of a CloudEvent the alert names; any of them may be missing or of any type. */
export interface MalformedEvent {
  id?: unknown;
  type?: unknown;
  source?: unknown;
  data?: unknown;
}

/**
 * The alert id of `event`: `malformed-event:<event id>` for an id of up to
 * 128 visible ASCII characters, otherwise `malformed-event:sha256-<16 hex>`
 * of the event's id, type, source and data (the same for a redelivery).
 */
export function malformedEventAlertId(event: MalformedEvent): string {
  if (typeof event.id === 'string' && /^[\x21-\x7e]{1,128}$/.test(event.id)) return `malformed-event:${event.id}`;
  const digest = createHash('sha256').update(render(event)).digest('hex');
  return `malformed-event:sha256-${digest.slice(0, 16)}`;
}

/** The incident for `event`, which function `fn` could not read because of `problem` (one line). */
export function malformedEventAlert(fn: string, event: MalformedEvent, problem: string, now: Date): OpenAlert {
  const details: Record<string, unknown> = { function: fn, problem, event: excerpt(event) };
  if (typeof event.id === 'string') details.eventId = event.id;
  if (typeof event.type === 'string') details.eventType = event.type;
  if (typeof event.source === 'string') details.source = event.source;
  return {
    id: malformedEventAlertId(event),
    kind: 'malformed-event',
    severity: 'ERROR',
    summary: `the ${fn} function dropped a malformed event: ${problem}; it is not retried, so check what triggers the function and what it sends`,
    details,
    opened: now.toISOString(),
  };
}

/** The malformed-event alerts of the open set that stay open at `now` (opened less than MALFORMED_EVENT_KEEP_SECONDS ago). */
export function keptMalformedEventAlerts(open: Readonly<Record<string, OpenAlert>>, now: Date): OpenAlert[] {
  return Object.values(open).filter((a) => {
    if (a.kind !== 'malformed-event') return false;
    const opened = Date.parse(a.opened);
    // A time that does not parse cannot be waited out: let it go.
    return !Number.isNaN(opened) && now.getTime() - opened < MALFORMED_EVENT_KEEP_SECONDS * 1000;
  });
}

/**
 * The alerts of `raised` that may open beside the open set `open`: all but
 * the malformed-event alerts that are not open yet and would take their
 * number past MALFORMED_EVENT_MAX_OPEN.
 */
export function admitRaisedAlerts(open: Readonly<Record<string, OpenAlert>>, raised: readonly OpenAlert[]): OpenAlert[] {
  let count = Object.values(open).filter((a) => a.kind === 'malformed-event').length;
  return raised.filter((a) => {
    if (a.kind !== 'malformed-event' || Object.hasOwn(open, a.id)) return true;
    if (count >= MALFORMED_EVENT_MAX_OPEN) return false;
    count++;
    return true;
  });
}

/** The event as JSON, at most EXCERPT_CHARS long (its data may be anything, of any size). */
export function excerpt(event: MalformedEvent): string {
  const text = render(event);
  return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text;
}

/** The parts of `event` the alert depends on, as JSON; a body the framework kept as bytes as its text. */
function render(event: MalformedEvent): string {
  const data = Buffer.isBuffer(event.data) ? event.data.toString('utf8') : event.data;
  try {
    return JSON.stringify({ id: event.id, type: event.type, source: event.source, data });
  } catch {
    return String(data);
  }
}
