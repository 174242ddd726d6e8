/**
 * Object change notifications, delivered the way Google delivers them:
 * - `cloudevent`: an Eventarc-style CloudEvent POSTed in binary mode
 *   (ce-* headers, the object resource as the JSON body), what a Cloud
 *   Functions gen2 storage trigger receives;
 * - `pubsub`: a GCS Pub/Sub notification (JSON_API_V1 payload and the
 *   standard attributes) published to gcloud's Pub/Sub emulator over REST.
 *
 * Delivery never delays the API response that caused it: events are queued
 * and sent in the background, at least once (a failed attempt is retried a
 * few times with backoff; a retry keeps the event id so a consumer can drop
 * duplicates), one after another per target and object so that a consumer
 * sees an object's events in the order they happened.
 */
import { randomUUID } from 'node:crypto';
import type { ObjectRecord } from './store.ts';

/** Where object events go; see GcsEmulatorOptions in server.ts. */
export type EventTarget =
  | { kind: 'cloudevent'; url: string; types?: ('finalized' | 'deleted')[]; prefix?: string }
  | { kind: 'pubsub'; emulatorHost: string; project: string; topic: string; prefix?: string };

/** One object change. */
export interface ObjectEvent {
  type: 'finalized' | 'deleted';
  record: ObjectRecord;
  /** the storage#object JSON of `record` */
  resource: Record<string, unknown>;
  /** when it happened, RFC 3339 */
  time: string;
  /** on the finalize of a replacement: the generation it replaced */
  overwroteGeneration?: string;
  /** on the delete caused by a replacement: the generation that replaced it */
  overwrittenByGeneration?: string;
}

/** Delivery counters, shared with the emulator's stats(). */
export interface EventCounters {
  eventsDelivered: number;
  eventsFailed: number;
}

const ATTEMPTS = 5;
const FIRST_BACKOFF_MS = 200;
const ATTEMPT_TIMEOUT_MS = 10_000;

/** The HTTP request that delivers `event` to `target` (no I/O; testable on its own). */
export function deliveryRequest(
  target: EventTarget,
  event: ObjectEvent,
  id: string,
  configIndex: number,
): { url: string; headers: Record<string, string>; body: string } {
  const { bucket, name, generation } = event.record;
  if (target.kind === 'cloudevent') {
    return {
      url: target.url,
      headers: {
        'Content-Type': 'application/json',
        'ce-id': id,
        'ce-source': `//storage.googleapis.com/projects/_/buckets/${bucket}`,
        'ce-specversion': '1.0',
        'ce-type': `google.cloud.storage.object.v1.${event.type}`,
        'ce-subject': `objects/${name}`,
        'ce-time': event.time,
        'ce-bucket': bucket,
      },
      body: JSON.stringify(event.resource),
    };
  }
  const attributes: Record<string, string> = {
    notificationConfig: `projects/_/buckets/${bucket}/notificationConfigs/${configIndex + 1}`,
    eventType: event.type === 'finalized' ? 'OBJECT_FINALIZE' : 'OBJECT_DELETE',
    payloadFormat: 'JSON_API_V1',
    bucketId: bucket,
    objectId: name,
    objectGeneration: generation,
    eventTime: event.time,
  };
  if (event.overwroteGeneration) attributes.overwroteGeneration = event.overwroteGeneration;
  if (event.overwrittenByGeneration) attributes.overwrittenByGeneration = event.overwrittenByGeneration;
  const data = Buffer.from(JSON.stringify(event.resource)).toString('base64');
  return {
    url: `http://${target.emulatorHost}/v1/projects/${target.project}/topics/${target.topic}:publish`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ data, attributes }] }),
  };
}

/** Whether `target` wants `event`. */
export function wants(target: EventTarget, event: ObjectEvent): boolean {
  if (target.prefix !== undefined && !event.record.name.startsWith(target.prefix)) return false;
  if (target.kind === 'cloudevent' && target.types && !target.types.includes(event.type)) return false;
  return true;
}

/** Queues events and delivers them in the background. */
export class EventDispatcher {
  private targets: EventTarget[];
  private readonly counters: EventCounters;
  private readonly abort = new AbortController();
  /** per target-and-object chains of pending deliveries */
  private readonly chains = new Map<string, Promise<void>>();
  private generationOfTargets = 0;

  constructor(targets: EventTarget[], counters: EventCounters) {
    this.targets = [...targets];
    this.counters = counters;
  }

  /** Replace the targets; events already queued still go to the old ones. */
  setTargets(targets: EventTarget[]): void {
    this.targets = [...targets];
    this.generationOfTargets++;
  }

  /** Queue `event` for every target that wants it; returns at once. */
  emit(event: ObjectEvent): void {
    if (this.abort.signal.aborted) return;
    this.targets.forEach((target, index) => {
      if (!wants(target, event)) return;
      const key = `${this.generationOfTargets}\u0000${index}\u0000${event.record.bucket}\u0000${event.record.name}`;
      const request = deliveryRequest(target, event, randomUUID(), index);
      const previous = this.chains.get(key) ?? Promise.resolve();
      const next = previous.then(() => this.deliver(request));
      this.chains.set(key, next);
      void next.then(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    });
  }

  /** Resolves when every event queued so far has been delivered or given up on. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  /** Stop: pending and future deliveries are dropped. */
  close(): void {
    this.abort.abort();
  }

  private async deliver(request: { url: string; headers: Record<string, string>; body: string }): Promise<void> {
    const signal = this.abort.signal;
    for (let attempt = 1; attempt <= ATTEMPTS && !signal.aborted; attempt++) {
      try {
        const response = await fetch(request.url, {
          method: 'POST',
          headers: request.headers,
          body: request.body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) {
          this.counters.eventsDelivered++;
          return;
        }
      } catch {
        // Connection refused, reset, timeout: retry below.
      }
      if (attempt < ATTEMPTS) await sleep(FIRST_BACKOFF_MS * 2 ** (attempt - 1), signal);
    }
    if (!signal.aborted) this.counters.eventsFailed++;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
