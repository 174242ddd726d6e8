/**
 * Malformed events handed to the four functions as deployed: the bundled
 * functions under the real functions-framework on the local stack, storage
 * events POSTed to validate and catalogue the way Eventarc delivers them,
 * scheduler messages published on gcloud's Pub/Sub emulator and pushed into
 * prune and watchdog, alerts read from gcwal-alerts by a real subscriber.
 * Each bad event is acknowledged (never a 500, which the platform retries
 * for a day), logged, and raises one alert however often it is delivered.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertMessage } from '../../../core/alerts/types.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';

let stack: LocalStack;

test.before(async () => {
  stack = await startLocalStack({ bucket: 'malformed-events', prefix: 'db', pipeline: { toolEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } } });
  stack.pipeline!.alerts(); // starts the subscriber
});

test.after.always(async () => {
  await stack?.close();
});

const STORAGE = 'google.cloud.storage.object.v1.finalized';

/**
 * POST a CloudEvent to function `fn`, in binary mode as Eventarc does (the
 * body is the data), or in structured mode with `body` as the data's text;
 * resolves with the HTTP status.
 */
async function deliver(fn: 'validate' | 'catalogue', id: string, body: string, { type = STORAGE, structured = false } = {}): Promise<number> {
  const attributes = {
    id,
    specversion: '1.0',
    type,
    source: `//storage.googleapis.com/projects/_/buckets/${stack.bucket}`,
    subject: 'objects/db/wal/000000010000000000000001',
    time: new Date().toISOString(),
  };
  const res = await fetch(stack.pipeline!.functions[fn].url, {
    method: 'POST',
    headers: structured
      ? { 'Content-Type': 'application/cloudevents+json' }
      : { 'Content-Type': 'application/json', ...Object.fromEntries(Object.entries(attributes).map(([k, v]) => [`ce-${k}`, v])) },
    body: structured ? JSON.stringify({ ...attributes, data: body }) : body,
    signal: AbortSignal.timeout(60_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Publish `data` on `topic` through the Pub/Sub emulator's REST API; resolves with the message id. */
async function publish(topic: string, data: string): Promise<string> {
  const { host, projectId } = stack.pipeline!.pubsub;
  const res = await fetch(`http://${host}/v1/projects/${projectId}/topics/${topic}:publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ data: Buffer.from(data).toString('base64') }] }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`publish to ${topic} answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { messageIds: string[] }).messageIds[0];
}

/**
 * Every malformed-event alert received, once each of `expected` has arrived
 * and then nothing new for a while (for asserting nothing came twice).
 */
async function settledAlerts(expected: string[]): Promise<AlertMessage[]> {
  for (const id of expected) await stack.pipeline!.nextAlert((a) => a.id === id, 60_000);
  let count = -1;
  while (count !== stack.pipeline!.alerts().length) {
    count = stack.pipeline!.alerts().length;
    await sleep(1500);
  }
  return stack.pipeline!.alerts().filter((a) => a.kind === 'malformed-event');
}

const object = (fields: Record<string, unknown>) =>
  JSON.stringify({ kind: 'storage#object', bucket: 'malformed-events', name: 'db/wal/000000010000000000000001', generation: '1', size: '16', ...fields });

const STORAGE_CASES: { id: string; body: string; type?: string; structured?: boolean; problem: RegExp }[] = [
  { id: 'no-data', body: '{}', problem: /has bucket undefined, not a bucket name/ },
  // The data as text that is not JSON (functions-framework itself refuses a body that is not JSON, before any function runs).
  { id: 'garbage-json', body: '{"bucket": "malformed-events", "name": ', structured: true, problem: /has data that is not JSON/ },
  { id: 'name-not-a-string', body: object({ name: ['db', 'wal'] }), problem: /has name \["db","wal"\], not an object name/ },
  { id: 'wrong-types', body: object({ generation: { high: 1 } }), problem: /lacks a generation/ },
  { id: 'size-not-a-count', body: object({ size: 'lots' }), problem: /has size "lots", not a byte count/ },
  {
    id: 'not-our-bucket',
    body: object({ bucket: 'someone-elses' }),
    problem: /is about bucket "someone-elses", not the repository's bucket "malformed-events"/,
  },
  { id: 'not-a-storage-event', body: object({}), type: 'google.cloud.pubsub.topic.v1.messagePublished', problem: /not a cloud storage object event/ },
];

test.serial('a malformed storage event is acknowledged by validate and catalogue, delivered three times, and raises one alert', async (t) => {
  for (const c of STORAGE_CASES) {
    // Eventarc delivers to both functions, and may deliver twice.
    const statuses = [await deliver('validate', c.id, c.body, c), await deliver('catalogue', c.id, c.body, c), await deliver('validate', c.id, c.body, c)];
    t.true(
      statuses.every((s) => s >= 200 && s < 300),
      `${c.id}: ${statuses.join(', ')}\n${stack.pipeline!.logs().validate.slice(-2000)}`,
    );
  }
  const alerts = await settledAlerts(STORAGE_CASES.map((c) => `malformed-event:${c.id}`));
  t.deepEqual(alerts.map((a) => a.id).sort(), STORAGE_CASES.map((c) => `malformed-event:${c.id}`).sort(), 'one alert per bad event');
  for (const c of STORAGE_CASES) {
    const alert = alerts.find((a) => a.id === `malformed-event:${c.id}`)!;
    t.like(alert, { status: 'open', severity: 'ERROR', kind: 'malformed-event', details: { eventId: c.id } }, c.id);
    t.regex(alert.summary, c.problem, c.id);
    t.regex(alert.summary, /^the (validate|catalogue) function dropped a malformed event: /);
  }
  const logged = stack
    .pipeline!.logs()
    .validate.split('\n')
    .filter((l) => l.startsWith('{"severity":"ERROR","message":"dropped a malformed event: '))
    .map((l) => JSON.parse(l) as { alert: string });
  t.deepEqual([...new Set(logged.map((l) => l.alert))].sort(), STORAGE_CASES.map((c) => `malformed-event:${c.id}`).sort(), 'each delivery is logged');
  const { catalogue } = await stack.pipeline!.readCatalogue();
  t.deepEqual(
    Object.keys(catalogue.alerts)
      .filter((id) => id.startsWith('malformed-event:'))
      .sort(),
    STORAGE_CASES.map((c) => `malformed-event:${c.id}`).sort(),
    'open in the catalogue, so gcwal status shows them',
  );
});

test.serial('a message on the prune or watchdog topic that is not its scheduler tick runs nothing and raises one alert', async (t) => {
  const before = new Set((await settledAlerts([])).map((a) => a.id));
  const { topics } = stack.pipeline!;
  const sent = [await publish(topics.prune, '{"job": prune}'), await publish(topics.prune, '{"job":"watchdog"}'), await publish(topics.watchdog, '[]')];
  const fresh = (await settledAlerts(sent.map((id) => `malformed-event:${id}`))).filter((a) => !before.has(a.id));
  t.deepEqual(fresh.map((a) => a.id).sort(), sent.map((id) => `malformed-event:${id}`).sort());
  t.regex(
    fresh.find((a) => a.id === `malformed-event:${sent[1]}`)!.summary,
    /^the prune function dropped a malformed event: scheduler message "\d+" is for job "watchdog", not prune/,
  );
  t.false(
    stack.pipeline!.events().some((e) => e.data.kind === 'pruned'),
    'prune did not run',
  );
  // A real tick still runs it.
  await stack.pipeline!.tick('prune');
  t.like(await stack.pipeline!.nextEvent((e) => e.kind === 'pruned', 60_000), { kind: 'pruned', dryRun: false });
});
