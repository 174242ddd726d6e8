/**
 * Object events: CloudEvents (binary mode) to a loopback receiver, and GCS
 * Pub/Sub notifications published to gcloud's real Pub/Sub emulator.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../../local/process/port.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { childEnv } from '../../../local/testkit/users.ts';
import { raw, startTestEmulator } from './harness.ts';

interface Received {
  headers: IncomingHttpHeaders;
  body: any;
}

/** A loopback HTTP receiver; answers `failFirst` requests with 500 before accepting. */
async function receiver(t: Parameters<typeof startTestEmulator>[0], failFirst = 0): Promise<{ url: string; events: Received[]; attemptIds: string[] }> {
  const events: Received[] = [];
  const attemptIds: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      attemptIds.push(String(req.headers['ce-id']));
      if (attemptIds.length <= failFirst) {
        res.writeHead(500).end();
        return;
      }
      events.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, events, attemptIds };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

const upload = (url: string, name: string, body: string, query = '') =>
  raw(`${url}/upload/storage/v1/b/bkt/o?uploadType=media&name=${encodeURIComponent(name)}${query}`, { method: 'POST', body });

test("finalize and delete arrive as binary-mode CloudEvents with Eventarc's attributes", async (t) => {
  const sink = await receiver(t);
  const { emu } = await startTestEmulator(t, { events: [{ kind: 'cloudevent', url: sink.url }] });
  await emu.createBucket('bkt');
  const created = (await upload(emu.url, 'wal/0001', 'segment')).json();
  await raw(`${emu.url}/storage/v1/b/bkt/o/${encodeURIComponent('wal/0001')}`, { method: 'DELETE' });
  await until(() => sink.events.length === 2);
  const [finalized, deleted] = sink.events;
  t.is(finalized.headers['ce-type'], 'google.cloud.storage.object.v1.finalized');
  t.is(deleted.headers['ce-type'], 'google.cloud.storage.object.v1.deleted');
  for (const event of sink.events) {
    t.is(event.headers['ce-specversion'], '1.0');
    t.is(event.headers['ce-source'], '//storage.googleapis.com/projects/_/buckets/bkt');
    t.is(event.headers['ce-subject'], 'objects/wal/0001');
    t.is(event.headers['ce-bucket'], 'bkt');
    t.regex(event.headers['ce-time'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.is(event.headers['content-type'], 'application/json');
    t.is(event.body.name, 'wal/0001');
    t.is(event.body.generation, created.generation);
    t.is(event.body.size, '7');
    t.is(event.body.crc32c, created.crc32c);
  }
  t.not(finalized.headers['ce-id'], deleted.headers['ce-id']);
  // The receiver has the events before the emulator has read its answer.
  await until(() => emu.stats().eventsDelivered === 2);
});

test('replacing an object deletes the old generation before finalizing the new one, and filters apply', async (t) => {
  const all = await receiver(t);
  const onlyFinalized = await receiver(t);
  const { emu } = await startTestEmulator(t, {
    events: [
      { kind: 'cloudevent', url: all.url, prefix: 'wal/' },
      { kind: 'cloudevent', url: onlyFinalized.url, types: ['finalized'] },
    ],
  });
  await emu.createBucket('bkt');
  const first = (await upload(emu.url, 'wal/x', 'one')).json();
  const second = (await upload(emu.url, 'wal/x', 'two', `&ifGenerationMatch=${first.generation}`)).json();
  await upload(emu.url, 'other/y', 'ignored by the prefix');
  await until(() => all.events.length === 3 && onlyFinalized.events.length === 3);
  t.deepEqual(
    all.events.map((e) => [e.headers['ce-type'], e.body.generation]),
    [
      ['google.cloud.storage.object.v1.finalized', first.generation],
      ['google.cloud.storage.object.v1.deleted', first.generation],
      ['google.cloud.storage.object.v1.finalized', second.generation],
    ],
  );
  t.true(onlyFinalized.events.every((e) => e.headers['ce-type'] === 'google.cloud.storage.object.v1.finalized'));
});

test('a receiver that fails at first still gets the event, with the same id on every attempt', async (t) => {
  const sink = await receiver(t, 2);
  const { emu } = await startTestEmulator(t, { events: [{ kind: 'cloudevent', url: sink.url }] });
  await emu.createBucket('bkt');
  await upload(emu.url, 'retried', 'x');
  await until(() => sink.events.length === 1);
  t.is(sink.attemptIds.length, 3);
  t.deepEqual(new Set(sink.attemptIds), new Set([sink.events[0].headers['ce-id']]));
  await until(() => emu.stats().eventsDelivered === 1);
  t.is(emu.stats().eventsFailed, 0);
});

test('an unreachable target is counted as failed after its retries and never delays the API', async (t) => {
  const port = await freePort();
  const { emu } = await startTestEmulator(t, { events: [{ kind: 'cloudevent', url: `http://127.0.0.1:${port}/` }] });
  await emu.createBucket('bkt');
  t.is((await upload(emu.url, 'lost', 'x')).status, 200);
  // The API answered before the delivery gave up: its retries take seconds.
  t.is(emu.stats().eventsFailed, 0);
  await until(() => emu.stats().eventsFailed === 1, 15_000);
  t.is(emu.stats().eventsDelivered, 0);
});

/** gcloud's Pub/Sub emulator in its own process group (it forks java), killed with the group. */
async function startPubsub(t: Parameters<typeof startTestEmulator>[0]): Promise<string> {
  const port = await freePort();
  const config = await makeTempDir('pubsub');
  t.teardown(() => config.cleanup());
  const env = await childEnv({
    CLOUDSDK_CONFIG: config.path,
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
  });
  await mkdir(`${config.path}/data`);
  const child: ChildProcess = spawn('gcloud', ['beta', 'emulators', 'pubsub', 'start', `--host-port=127.0.0.1:${port}`, `--data-dir=${config.path}/data`], {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Pub/Sub emulator did not start in 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Server started')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Pub/Sub emulator exited with ${code}:\n${output}`));
    });
  });
  return `127.0.0.1:${port}`;
}

test('finalize and delete are published to Pub/Sub as GCS notifications', async (t) => {
  if (!existsSync('/usr/bin/gcloud')) {
    t.fail('gcloud is not installed (Google Cloud SDK with the pubsub-emulator component)');
    return;
  }
  const host = await startPubsub(t);
  const base = `http://${host}/v1/projects/test`;
  const put = (url: string, body: unknown) => raw(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  t.is((await put(`${base}/topics/gcs`, {})).status, 200);
  t.is((await put(`${base}/subscriptions/sub`, { topic: 'projects/test/topics/gcs' })).status, 200);

  const { emu } = await startTestEmulator(t, { events: [{ kind: 'pubsub', emulatorHost: host, project: 'test', topic: 'gcs' }] });
  await emu.createBucket('bkt');
  const created = (await upload(emu.url, 'wal/000000010000000000000001', 'segment bytes')).json();
  await raw(`${emu.url}/storage/v1/b/bkt/o/${encodeURIComponent(created.name)}`, { method: 'DELETE' });
  await until(() => emu.stats().eventsDelivered === 2);

  const messages: { message: { data: string; attributes: Record<string, string> }; ackId: string }[] = [];
  const deadline = Date.now() + 10_000;
  while (messages.length < 2 && Date.now() < deadline) {
    const pulled = await raw(`${base}/subscriptions/sub:pull`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ maxMessages: 10 }),
    });
    messages.push(...(pulled.json().receivedMessages ?? []));
  }
  t.is(messages.length, 2);
  const byType = Object.fromEntries(messages.map((m) => [m.message.attributes.eventType, m.message]));
  for (const type of ['OBJECT_FINALIZE', 'OBJECT_DELETE']) {
    const message = byType[type];
    t.truthy(message, `no ${type} message`);
    t.like(message.attributes, {
      notificationConfig: 'projects/_/buckets/bkt/notificationConfigs/1',
      payloadFormat: 'JSON_API_V1',
      bucketId: 'bkt',
      objectId: created.name,
      objectGeneration: created.generation,
    });
    t.regex(message.attributes.eventTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const payload = JSON.parse(Buffer.from(message.data, 'base64').toString('utf8'));
    t.is(payload.name, created.name);
    t.is(payload.size, '13');
    t.is(payload.md5Hash, created.md5Hash);
  }
});
