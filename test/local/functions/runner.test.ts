/**
 * A CloudEvent function under the real functions-framework CLI, fed by the
 * local GCS emulator directly (Eventarc-style CloudEvents) and through
 * gcloud's Pub/Sub emulator (GCS notifications on a topic, pushed into the
 * function). The fixture appends every event it receives to a file.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pubsubPushEndpoint, startFunction, type RunningFunction } from '../../../local/functions/runner.ts';
import { startPubSubEmulator, type PubSubEmulator } from '../../../local/pubsub/emulator.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SOURCE = path.join(ROOT, 'test/fixtures/functions/recorder.mjs');
const PROJECT = 'gcwal-test';
const TOPIC = 'gcs-objects';

interface Recorded {
  tag: string | null;
  event: { id: string; type: string; source: string; subject?: string; bucket?: string; data: any };
}

let work: TempDir;
let pubsub: PubSubEmulator;
let fn: RunningFunction;
let stack: LocalStack;

test.before(async (t) => {
  work = await makeTempDir('functions');
  const started = Date.now();
  [pubsub, fn] = await Promise.all([
    startPubSubEmulator({ projectId: PROJECT, env: await childEnv() }).then(
      (emulator) => (t.log(`pub/sub emulator ready in ${Date.now() - started} ms`), emulator),
    ),
    startFunction({
      source: SOURCE,
      target: 'record',
      signatureType: 'cloudevent',
      env: { RECORD_FILE: path.join(work.path, 'events.jsonl'), RECORD_TAG: 'from-env' },
    }).then((running) => (t.log(`function ready in ${Date.now() - started} ms`), running)),
  ]);
  await pubsub.createTopic(TOPIC);
  await pubsub.createPushSubscription('to-function', TOPIC, pubsubPushEndpoint(fn.url, PROJECT, TOPIC));
  stack = await startLocalStack({
    projectId: PROJECT,
    events: [
      { kind: 'cloudevent', url: fn.url, prefix: 'direct/' },
      { kind: 'pubsub', emulatorHost: pubsub.host, project: PROJECT, topic: TOPIC, prefix: 'via-pubsub/' },
    ],
  });
});

test.after.always(async () => {
  await Promise.all([stack?.close(), fn?.close(), pubsub?.close()]);
  await work?.cleanup();
});

async function recorded(): Promise<Recorded[]> {
  const text = await readFile(path.join(work.path, 'events.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Recorded);
}

async function until<T>(find: (events: Recorded[]) => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find(await recorded());
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not arrive within ${timeoutMs} ms; function logs:\n${fn.logs()}`);
    await sleep(25);
  }
}

async function upload(name: string, body: string): Promise<{ generation: string }> {
  const res = await fetch(`${stack.emulator.url}/upload/storage/v1/b/${stack.bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
    body,
  });
  if (res.status !== 200) throw new Error(`upload of ${name} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { generation: string };
}

function refused(port: number): Promise<boolean> {
  return refusedAt('127.0.0.1', port);
}

function refusedAt(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/**
 * The local addresses of the TCP sockets listening on `port`, from the
 * kernel's tables (`0100007F` is 127.0.0.1, all zeros an unspecified address).
 */
async function listeningAddresses(port: number): Promise<string[]> {
  const found: string[] = [];
  for (const [file, ipv6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    const table = await readFile(file, 'utf8').catch(() => '');
    for (const line of table.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue;
      const [hex, portHex] = local.split(':');
      if (parseInt(portHex, 16) !== port) continue;
      const bytes = Buffer.from(hex, 'hex');
      // Each 32-bit word is in host (little-endian) order.
      for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
      found.push(ipv6 ? (bytes.every((b) => b === 0) ? '::' : bytes.toString('hex')) : [...bytes].join('.'));
    }
  }
  return found.sort();
}

test('the function listens on 127.0.0.1 only, so no other address of the host reaches it', async (t) => {
  const port = Number(new URL(fn.url).port);
  t.deepEqual(await listeningAddresses(port), ['127.0.0.1']);
  const others = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && !a.address.startsWith('fe80:'));
  if (others.length === 0) {
    t.log('this host has no non-loopback address: only the listening address is checked');
    return;
  }
  for (const a of others) t.true(await refusedAt(a!.address, port), `connecting to ${a!.address}:${port}`);
});

test('the gcs emulator delivers a finalize CloudEvent to the function under the real framework', async (t) => {
  const name = 'direct/000000010000000000000002';
  const created = await upload(name, 'sixteen bytes!!!');
  const { tag, event } = await until((events) => events.find((e) => e.event.subject === `objects/${name}`), 'the finalize event');
  t.is(tag, 'from-env');
  t.is(event.type, 'google.cloud.storage.object.v1.finalized');
  t.is(event.source, `//storage.googleapis.com/projects/_/buckets/${stack.bucket}`);
  t.is(event.bucket, stack.bucket);
  t.like(event.data, { name, bucket: stack.bucket, generation: created.generation, size: '16' });
  t.regex(fn.logs(), new RegExp(`recorded google\\.cloud\\.storage\\.object\\.v1\\.finalized ${event.id}`));
});

test('an object event published to pub/sub reaches the function through a push subscription as messagePublished', async (t) => {
  const name = 'via-pubsub/backups/b1/backup.json';
  const created = await upload(name, '{}');
  const { event } = await until((events) => events.find((e) => e.event.data?.message?.attributes?.objectId === name), 'the pushed message');
  t.is(event.type, 'google.cloud.pubsub.topic.v1.messagePublished');
  t.is(event.source, `//pubsub.googleapis.com/projects/${PROJECT}/topics/${TOPIC}`);
  const { message } = event.data;
  t.like(message.attributes, { eventType: 'OBJECT_FINALIZE', bucketId: stack.bucket, objectGeneration: created.generation });
  t.truthy(message.messageId);
  t.like(JSON.parse(Buffer.from(message.data, 'base64').toString('utf8')), { name, generation: created.generation, size: '2' });
});

test('a push to the bare function url loses the topic, which is why the endpoint names it', async (t) => {
  await pubsub.createTopic('bare');
  await pubsub.createPushSubscription('bare-to-function', 'bare', fn.url);
  await fetch(`http://${pubsub.host}/v1/projects/${PROJECT}/topics/bare:publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ data: Buffer.from('x').toString('base64'), attributes: { marker: 'bare' } }] }),
  });
  const { event } = await until((events) => events.find((e) => e.event.data?.message?.attributes?.marker === 'bare'), 'the bare push');
  t.is(event.type, 'google.cloud.pubsub.topic.v1.messagePublished');
  t.is(event.source, '//pubsub.googleapis.com/');
});

test('the push endpoint names the project and topic under the function url', (t) => {
  t.is(pubsubPushEndpoint('http://127.0.0.1:8080', 'p', 't'), 'http://127.0.0.1:8080/projects/p/topics/t');
  t.is(pubsubPushEndpoint('http://127.0.0.1:8080/', 'p', 't'), 'http://127.0.0.1:8080/projects/p/topics/t');
});

test("a target the module does not export fails at once with the framework's message", async (t) => {
  const started = Date.now();
  const error = await t.throwsAsync(startFunction({ source: SOURCE, target: 'nope', signatureType: 'cloudevent' }));
  t.regex(error!.message, /^function nope exited with code 1 before it was ready; its last output:\n.*Function 'nope' is not defined in the provided module/s);
  t.true(Date.now() - started < 30_000);
});

test('a missing source is refused before anything starts', async (t) => {
  await t.throwsAsync(startFunction({ source: path.join(work.path, 'absent.mjs'), target: 'record', signatureType: 'cloudevent' }), {
    message: /^function source .*absent\.mjs does not exist/,
  });
});

test('close() stops the function and frees its port', async (t) => {
  const own = await startFunction({ source: SOURCE, target: 'record', signatureType: 'cloudevent', env: { RECORD_FILE: path.join(work.path, 'own.jsonl') } });
  // A failed assertion must not leave the function running (the test worker would never exit).
  t.teardown(() => own.close());
  const port = Number(new URL(own.url).port);
  // Ready means it answers; its banner on stdout may still be on its way.
  for (const deadline = Date.now() + 30_000; !/Serving function/.test(own.logs()) && Date.now() < deadline; )
    await new Promise((resolve) => setTimeout(resolve, 50));
  t.regex(own.logs(), /Serving function/);
  t.false(await refused(port));
  await own.close();
  t.true(await refused(port));
  await own.close();
});
