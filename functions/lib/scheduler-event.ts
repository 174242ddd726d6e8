/**
 * Decoding the Pub/Sub messages that trigger the scheduled functions (prune,
 * watchdog): Cloud Scheduler publishes `{"job":"<function>"}` on the
 * function's topic (terraform/modules/pipeline/scheduler.tf) and its trigger
 * delivers it as a `google.cloud.pubsub.topic.v1.messagePublished`
 * CloudEvent. Nothing in the message steers the run; it only has to be one.
 */
import { MalformedEventError, shown, type IncomingEvent } from './storage-event.ts';

const PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';

/**
 * Check that `event` is a scheduler tick for `job`: a messagePublished event
 * whose message data, when there is any, is a JSON object naming no other
 * job. Throws MalformedEventError saying what is wrong otherwise (a prune
 * must never run on a message meant for something else).
 */
export function checkSchedulerEvent(event: IncomingEvent, job: string): void {
  const bad = (what: string) =>
    new MalformedEventError(
      `scheduler message ${shown(event.id)} ${what}`,
      `check that only cloud scheduler's ${job} job publishes on the function's topic, with the body {"job":"${job}"}`,
    );
  if (event.type !== PUBLISHED) throw bad(`has type ${shown(event.type)}, not ${PUBLISHED}`);
  const message = (event.data as { message?: unknown } | undefined)?.message;
  if (!message || typeof message !== 'object') throw bad('has no pub/sub message');
  const data = (message as { data?: unknown }).data;
  if (data === undefined || data === '') return;
  if (typeof data !== 'string') throw bad(`has message data ${shown(data)}, not base64`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
  } catch {
    throw bad('has message data that is not JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad(`has message data ${shown(body)}, not a JSON object`);
  const named = (body as { job?: unknown }).job;
  if (named !== undefined && named !== job) throw bad(`is for job ${shown(named)}, not ${job}`);
}
