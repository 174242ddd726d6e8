/**
 * gcloud's real Pub/Sub emulator under startPubSubEmulator: admin helpers,
 * push and pull delivery (the pull side through the @google-cloud/pubsub
 * client the functions publish with), GCS notifications from the local GCS
 * emulator, and a close() that leaves no JVM behind.
 */
import { PubSub, type Message } from '@google-cloud/pubsub';
import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPubSubEmulator, type PubSubEmulator } from '../../../local/pubsub/emulator.ts';
import { freePort } from '../../../local/process/port.ts';
import { startLocalStack } from '../../../local/stack.ts';
import { childEnv } from '../../../local/testkit/users.ts';

const PROJECT = 'gcwal-test';

let shared: PubSubEmulator;

test.before(async (t) => {
  const started = Date.now();
  shared = await startPubSubEmulator({ projectId: PROJECT, env: await childEnv() });
  t.log(`pub/sub emulator ready in ${Date.now() - started} ms`);
});

test.after.always(() => shared?.close());

async function until<T>(get: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = get();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Pids of live processes whose command line mentions `needle`, with their command lines. */
async function processesMentioning(needle: string): Promise<{ pid: number; cmdline: string }[]> {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (cmdline.includes(needle) && state !== 'Z') found.push({ pid: Number(entry), cmdline });
  }
  return found;
}

/** A loopback receiver for push deliveries. */
async function pushReceiver(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; bodies: any[] }> {
  const bodies: any[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push({ path: req.url, ...JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bodies };
}

test('the emulator serves on a loopback host and tells clients how to reach it', (t) => {
  t.regex(shared.host, /^127\.0\.0\.1:\d+$/);
  t.deepEqual(shared.env, { PUBSUB_EMULATOR_HOST: shared.host, PUBSUB_PROJECT_ID: PROJECT });
  t.deepEqual(shared.clientOptions, { apiEndpoint: shared.host, emulatorMode: true, projectId: PROJECT });
});

test('topics and subscriptions are created, and creating them again is harmless', async (t) => {
  t.is(await shared.createTopic('twice'), `projects/${PROJECT}/topics/twice`);
  t.is(await shared.createTopic('twice'), `projects/${PROJECT}/topics/twice`);
  t.is(await shared.createPullSubscription('twice-sub', 'twice'), `projects/${PROJECT}/subscriptions/twice-sub`);
  t.is(await shared.createPullSubscription('twice-sub', 'twice'), `projects/${PROJECT}/subscriptions/twice-sub`);
  const listed = (await (await fetch(`http://${shared.host}/v1/projects/${PROJECT}/topics/twice/subscriptions`)).json()) as { subscriptions: string[] };
  t.deepEqual(listed.subscriptions, [`projects/${PROJECT}/subscriptions/twice-sub`]);
});

test("an invalid name is refused with the emulator's own message", async (t) => {
  await t.throwsAsync(shared.createTopic('x'), { message: /^pub\/sub emulator: PUT projects\/gcwal-test\/topics\/x answered 400: Invalid \[topics\] name/ });
  await t.throwsAsync(shared.createPullSubscription('orphan', 'no-such-topic'), { message: /answered 404/ });
});

test('a push subscription POSTs {subscription, message}, and creating it again moves its endpoint', async (t) => {
  const first = await pushReceiver(t);
  const second = await pushReceiver(t);
  await shared.createTopic('pushed');
  const subscription = await shared.createPushSubscription('pushed-sub', 'pushed', `${first.url}/first`);
  const client = new PubSub(shared.clientOptions);
  t.teardown(() => client.close());
  await client.topic('pushed').publishMessage({ data: Buffer.from('one'), attributes: { n: '1' } });
  const body = await until(() => first.bodies[0], 'the first push');
  t.is(body.path, '/first');
  t.is(body.subscription, subscription);
  t.is(Buffer.from(body.message.data, 'base64').toString(), 'one');
  t.deepEqual(body.message.attributes, { n: '1' });
  t.truthy(body.message.messageId);

  await shared.createPushSubscription('pushed-sub', 'pushed', `${second.url}/second`);
  await client.topic('pushed').publishMessage({ data: Buffer.from('two') });
  const moved = await until(() => second.bodies[0], 'the push to the new endpoint');
  t.is(Buffer.from(moved.message.data, 'base64').toString(), 'two');
  t.is(first.bodies.length, 1);
});

test('a pull subscriber reads the GCS notification of an uploaded object', async (t) => {
  await shared.createTopic('gcs-objects');
  await shared.createPullSubscription('gcs-objects-pull', 'gcs-objects');
  const stack = await startLocalStack({ projectId: PROJECT, events: [{ kind: 'pubsub', emulatorHost: shared.host, project: PROJECT, topic: 'gcs-objects' }] });
  t.teardown(() => stack.close());

  const client = new PubSub(shared.clientOptions);
  const subscription = client.subscription('gcs-objects-pull');
  t.teardown(async () => {
    await subscription.close();
    await client.close();
  });
  const messages: Message[] = [];
  subscription.on('message', (message: Message) => {
    messages.push(message);
    message.ack();
  });
  subscription.on('error', (err) => t.fail(`subscriber error: ${err.message}`));

  const name = 'wal/000000010000000000000001';
  const res = await fetch(`${stack.emulator.url}/upload/storage/v1/b/${stack.bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
    body: 'segment bytes',
  });
  t.is(res.status, 200);
  const created = (await res.json()) as { generation: string };

  const message = await until(() => messages[0], 'the pulled message');
  t.like(message.attributes, {
    eventType: 'OBJECT_FINALIZE',
    bucketId: stack.bucket,
    objectId: name,
    objectGeneration: created.generation,
    payloadFormat: 'JSON_API_V1',
  });
  t.like(JSON.parse(message.data.toString('utf8')), { name, bucket: stack.bucket, size: '13', generation: created.generation });
});

test('close() stops the launcher and its JVM and frees the port', async (t) => {
  const emulator = await startPubSubEmulator({ projectId: PROJECT, env: await childEnv() });
  const port = emulator.host.split(':')[1];
  const running = await processesMentioning(`--port=${port}`);
  t.true(
    running.some((p) => /\bjava\b/.test(p.cmdline)),
    `no java process for port ${port}: ${JSON.stringify(running)}`,
  );

  await emulator.close();
  t.deepEqual(await processesMentioning(`--port=${port}`), []);
  await t.throwsAsync(fetch(`http://${emulator.host}/v1/projects/${PROJECT}/topics`));
  await emulator.close();
});

test('a port held by another emulator is reported, not mistaken for ready, and nothing is left running', async (t) => {
  const port = Number(shared.host.split(':')[1]);
  const before = (await processesMentioning(`--port=${port}`)).map((p) => p.pid);
  const error = await t.throwsAsync(startPubSubEmulator({ projectId: PROJECT, port, env: await childEnv() }));
  t.regex(error!.message, new RegExp(`port ${port} was taken.*BindException`, 's'));
  t.deepEqual((await processesMentioning(`--port=${port}`)).map((p) => p.pid).sort(), before.sort());
});

test('an emulator that is not ready in time is stopped, and the error shows how far it got', async (t) => {
  const port = await freePort();
  const error = await t.throwsAsync(startPubSubEmulator({ projectId: PROJECT, port, readyTimeoutMs: 500, env: await childEnv() }));
  t.regex(error!.message, /^the pub\/sub emulator was not ready after 0\.5 s \(a loaded machine may need a longer timeout\); its last output:\n/);
  t.deepEqual([...(await processesMentioning(`127.0.0.1:${port}`)), ...(await processesMentioning(`--port=${port}`))], []);
});

test('without gcloud on PATH the start fails at once with a clear error', async (t) => {
  const error = await t.throwsAsync(startPubSubEmulator({ projectId: PROJECT, env: { PATH: '/nonexistent' } }));
  t.regex(error!.message, /^cannot start the pub\/sub emulator \(gcloud\): spawn gcloud ENOENT/);
});
