/**
 * What the function tests share: the local GCS stack, gcloud's real Pub/Sub
 * emulator, a recorder of the storage events the GCS emulator delivers the
 * way Eventarc does (so a test can hand them to a handler in-process, twice,
 * late or out of order), and per-test repositories with their own topics,
 * real pull subscribers and function runtimes.
 *
 * Everything in the test process authenticates as the functions' service
 * account, served by the metadata-server stand-in through keyless ADC (the
 * Cloud Storage client reads its environment itself, as on Cloud Functions).
 * That account gets roles/storage.objectUser: create, read, list, delete, as
 * the functions hold in production (terraform/modules/identities). Test
 * set-up (the agent's pushes, an operator's deletes) acts as it too.
 */
import { PubSub, type Message, type Subscription } from '@google-cloud/pubsub';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageError } from '../../core/errors.ts';
import { readCatalogue } from '../../core/catalogue/store.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { GcsStorage } from '../../core/storage/gcs/storage.ts';
import { readSmallObject } from '../../core/storage/objects.ts';
import type { ObjectInfo, Storage } from '../../core/storage/types.ts';
import { jsonLogger } from '../../functions/lib/log.ts';
import type { MalformedOutcome } from '../../functions/lib/malformed.ts';
import type { Publisher } from '../../functions/lib/publisher.ts';
import { createRuntime, type Runtime, type RuntimeOverrides } from '../../functions/lib/runtime.ts';
import type { IncomingEvent } from '../../functions/lib/storage-event.ts';
import { startPubSubEmulator, type PubSubEmulator } from '../../local/pubsub/emulator.ts';
import { DEFAULT_MUTATION_INTERVAL_MS } from '../../local/gcs/rate-limit.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { childEnv } from '../../local/testkit/users.ts';
import { adoptStackEnv } from '../helpers/stack-env.ts';

export const PROJECT = 'gcwal-functions-test';
export const FUNCTIONS_IDENTITY = `gcwal-functions@${PROJECT}.iam.gserviceaccount.com`;

/** A storage CloudEvent as functions-framework hands it to a handler (binary mode: ce-* headers as attributes, the JSON body as data). */
export interface StorageCloudEvent extends IncomingEvent {
  specversion: string;
  source: string;
  subject: string;
  time: string;
  bucket: string;
  data: Record<string, unknown> & { name: string; generation: string };
}

/** Records every delivery the GCS emulator makes to it, converted as functions-framework converts it. */
class EventRecorder {
  readonly events: StorageCloudEvent[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        // functions-framework's getBinaryCloudEventContext: every ce-* header becomes an attribute.
        const event: Record<string, unknown> = {};
        for (const [name, value] of Object.entries(req.headers)) {
          if (name.startsWith('ce-') && typeof value === 'string') event[name.slice(3)] = value;
        }
        event.data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        this.events.push(event as unknown as StorageCloudEvent);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A message as a real subscriber received it. */
export interface Received<T = any> {
  body: T;
  attributes: Record<string, string>;
}

/** Messages of one topic, read by a real streaming-pull subscriber that acks each. */
export class Inbox<T = any> {
  readonly received: Received<T>[] = [];
  private errors: Error[] = [];

  constructor(private readonly subscription: Subscription) {
    subscription.on('message', (m: Message) => {
      this.received.push({ body: JSON.parse(m.data.toString('utf8')), attributes: { ...m.attributes } });
      m.ack();
    });
    subscription.on('error', (err: Error) => this.errors.push(err));
  }

  /** The bodies received so far. */
  bodies(): T[] {
    if (this.errors.length > 0) throw this.errors[0];
    return this.received.map((r) => r.body);
  }

  /** Wait until `find` returns something for the bodies received; rejects after `timeoutMs`. */
  async waitFor<R>(find: (bodies: T[]) => R | undefined | false, what: string, timeoutMs = 20_000): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find(this.bodies());
      if (found !== undefined && found !== false) return found;
      if (Date.now() > deadline) throw new Error(`${what} did not arrive within ${timeoutMs} ms; received: ${JSON.stringify(this.bodies(), null, 1)}`);
      await sleep(50);
    }
  }

  /**
   * Wait until nothing new has arrived for `ms` (the emulator delivers a
   * published message to a connected subscriber within a fraction of a
   * second), then return the bodies. For asserting that something was NOT sent.
   */
  async quiet(ms = 1500): Promise<T[]> {
    let count = -1;
    while (count !== this.received.length) {
      count = this.received.length;
      await sleep(ms);
    }
    return this.bodies();
  }

  close(): Promise<void> {
    return this.subscription.close();
  }
}

/** One test's repository under its own prefix, with its own topics. */
export interface TestRepo {
  /** key prefix in the bucket, e.g. `r3-1a2b` */
  prefix: string;
  /** gs://bucket/prefix */
  url: string;
  /** the functions' environment for this repository */
  env: Record<string, string>;
  /** the repository as the agent and the test see it */
  storage: Storage;
  /** alert messages on this repository's alerts topic */
  alerts: Inbox;
  /** validation and prune messages on its events topic */
  events: Inbox;
  /** lines the runtimes logged, parsed */
  logs: Record<string, unknown>[];
  /** A function instance's runtime (a new one per call): env overrides on top of `env`. */
  runtime(overrides?: RuntimeOverrides, env?: Record<string, string>): Runtime;
  /** the catalogue as stored now */
  catalogue(): Promise<Catalogue>;
  /** Wait for the storage event of `key` (relative to the repository) of `type`, and of `generation` when given. */
  event(key: string, type: 'finalized' | 'deleted', generation?: string): Promise<StorageCloudEvent>;
  /** every storage event delivered so far for keys under the repository */
  delivered(): StorageCloudEvent[];
  /** `write` with a Buffer, create-only */
  put(key: string, bytes: Buffer, metadata?: Record<string, string>): Promise<ObjectInfo>;
  /** the stored bytes and metadata of `key` */
  stored(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }>;
}

/** The stack and emulators of one test file. */
export interface Harness {
  stack: LocalStack;
  pubsub: PubSubEmulator;
  /** a new repository with its topics and subscribers; closed by `t.teardown` */
  repo(t: { teardown(fn: () => unknown): void }, extraEnv?: Record<string, string>): Promise<TestRepo>;
  close(): Promise<void>;
}

/**
 * Each gcp-metadata google-auth-library loads (their dependencies, not ours):
 * the top-level library's and the copy @google-cloud/storage carries, which
 * the client library's own requests authenticate through.
 */
function gcpMetadataModules(): { setGCPResidency(value: boolean | null): void }[] {
  const require = createRequire(import.meta.url);
  const storage = createRequire(require.resolve('@google-cloud/storage'));
  const libraries = new Set([require.resolve('google-auth-library'), storage.resolve('google-auth-library')]);
  return [...libraries].map((library) => createRequire(library)('gcp-metadata'));
}

/**
 * Start the GCS stack (functions' identity as the metadata server's account),
 * the Pub/Sub emulator and the event recorder, and point this process's ADC
 * at the stand-in. Call once per test file, in test.before.
 */
export async function startHarness(): Promise<Harness> {
  const recorder = new EventRecorder();
  await recorder.start();
  const [stack, pubsub] = await Promise.all([
    startLocalStack({
      projectId: PROJECT,
      agentIdentity: FUNCTIONS_IDENTITY,
      agentRoles: ['roles/storage.objectUser'],
      events: [{ kind: 'cloudevent', url: recorder.url }],
    }),
    startPubSubEmulator({ projectId: PROJECT, env: await childEnv() }),
  ]);
  adoptStackEnv(stack);
  // The functions run on Google Cloud, where gcp-metadata knows it and waits
  // for the metadata server without its 3 s off-cloud deadline. Here the
  // stand-in shares this process's event loop with the functions under test:
  // a busy loop would miss a deadline production does not have.
  for (const metadata of gcpMetadataModules()) metadata.setGCPResidency(true);

  const client = new PubSub(pubsub.clientOptions);
  let counter = 0;
  // Closed by close() too, so a repository a test forgot to tear down cannot keep the process alive.
  const closers: (() => Promise<void>)[] = [];

  async function inbox(topic: string): Promise<Inbox> {
    await pubsub.createTopic(topic);
    await pubsub.createPullSubscription(`${topic}-test`, topic);
    return new Inbox(client.subscription(`${topic}-test`));
  }

  return {
    stack,
    pubsub,
    async repo(t, extraEnv = {}) {
      const id = `r${++counter}-${randomUUID().slice(0, 8)}`;
      const url = `gs://${stack.bucket}/${id}`;
      const [alerts, events] = await Promise.all([inbox(`alerts-${id}`), inbox(`events-${id}`)]);
      const publishers: Publisher[] = [];
      let closing: Promise<void> | undefined;
      const close = () => (closing ??= Promise.all([alerts.close(), events.close(), ...publishers.map((p) => p.close())]).then(() => {}));
      closers.push(close);
      t.teardown(close);
      const env: Record<string, string> = {
        GCWAL_REPO: url,
        GCWAL_GCS_ENDPOINT: stack.emulator.url,
        GOOGLE_CLOUD_PROJECT: PROJECT,
        PUBSUB_EMULATOR_HOST: pubsub.host,
        GCWAL_EVENTS_TOPIC: `events-${id}`,
        GCWAL_ALERTS_TOPIC: `alerts-${id}`,
        GCWAL_RETAIN_FULL: '2',
        ...extraEnv,
      };
      const storage = waitingOutRateLimit(new GcsStorage(url, { endpoint: stack.emulator.url, projectId: PROJECT, retries: 2 }));
      const logs: Record<string, unknown>[] = [];
      const prefix = `${id}/`;
      const delivered = () => recorder.events.filter((e) => e.data.name.startsWith(prefix));
      return {
        prefix: id,
        url,
        env,
        storage,
        alerts,
        events,
        logs,
        runtime(overrides = {}, more = {}) {
          const rt = createRuntime({ ...env, ...more }, { log: jsonLogger((line) => logs.push(JSON.parse(line))), ...overrides });
          publishers.push(rt.publisher);
          return rt;
        },
        async catalogue() {
          return (await readCatalogue(storage)).catalogue;
        },
        async event(key, type, generation) {
          const deadline = Date.now() + 20_000;
          for (;;) {
            const found = delivered().find(
              (e) =>
                e.data.name === prefix + key &&
                e.type === `google.cloud.storage.object.v1.${type}` &&
                (generation === undefined || e.data.generation === generation),
            );
            if (found) return structuredClone(found);
            if (Date.now() > deadline) throw new Error(`no ${type} event for ${key}${generation ? ` generation ${generation}` : ''} within 20 s`);
            await sleep(25);
          }
        },
        delivered: () => delivered().map((e) => structuredClone(e)),
        put(key, bytes, metadata = {}) {
          return politely(() => storage.write(key, Readable.from([bytes]), { metadata }));
        },
        async stored(key) {
          const info = await storage.stat(key);
          if (!info) throw new Error(`${key} is not stored`);
          return { bytes: await readSmallObject(storage, key), metadata: info.metadata };
        },
      };
    },
    async close() {
      await Promise.all(closers.map((c) => c().catch(() => {})));
      await client.close().catch(() => {});
      await Promise.all([stack.close(), pubsub.close(), recorder.close()]);
    },
  };
}

/**
 * Run one of the test's own mutations, waiting out Cloud Storage's one
 * mutation per object a second (the emulator's 429) as a careful operator
 * would: a test that deletes or replaces an object it or a function has just
 * written is not testing the rate. The functions' own writes get no such help.
 */
async function politely<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (attempt >= 3 || !(err instanceof StorageError && /HTTP 429/.test(err.message))) throw err;
      await sleep(DEFAULT_MUTATION_INTERVAL_MS);
    }
  }
}

/**
 * `storage` as the test's own hand: a write or delete of a name the test
 * mutated less than the emulator's interval ago waits until it may (a write
 * streams its source, so it cannot simply be tried again), and a delete
 * refused with 429 (a function wrote the object's metadata just before) is
 * tried again a second later.
 */
function waitingOutRateLimit(storage: GcsStorage): GcsStorage {
  const last = new Map<string, number>();
  const spaced = async <T>(key: string, op: () => Promise<T>): Promise<T> => {
    const wait = (last.get(key) ?? -Infinity) + DEFAULT_MUTATION_INTERVAL_MS - performance.now();
    if (wait > 0) await sleep(wait);
    try {
      return await op();
    } finally {
      last.set(key, performance.now());
    }
  };
  return new Proxy(storage, {
    get(target, prop) {
      if (prop === 'delete')
        return (key: string, options?: Parameters<GcsStorage['delete']>[1]) => spaced(key, () => politely(() => target.delete(key, options)));
      if (prop === 'write')
        return (key: string, ...rest: Parameters<GcsStorage['write']> extends [string, ...infer R] ? R : never) =>
          spaced(key, () => target.write(key, ...rest));
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A Cloud Scheduler tick as the prune and watchdog functions receive it: a Pub/Sub messagePublished CloudEvent. */
export function schedulerEvent(topic: string): IncomingEvent & Record<string, unknown> {
  const messageId = String(Date.now()) + String(Math.floor(Math.random() * 1000));
  const publishTime = new Date().toISOString();
  return {
    id: messageId,
    specversion: '1.0',
    type: 'google.cloud.pubsub.topic.v1.messagePublished',
    source: `//pubsub.googleapis.com/projects/${PROJECT}/topics/${topic}`,
    time: publishTime,
    data: {
      subscription: `projects/${PROJECT}/subscriptions/eventarc-${topic}`,
      message: { data: Buffer.from('{}').toString('base64'), attributes: {}, messageId, publishTime },
    },
  };
}

/** The outcome of a handler that ran, failing the test when it dropped its event as malformed. */
export function ran<T extends { status: string }>(outcome: T): Exclude<T, MalformedOutcome> {
  if (outcome.status === 'malformed') throw new Error(`the event was dropped as malformed: ${(outcome as unknown as MalformedOutcome).problem}`);
  return outcome as Exclude<T, MalformedOutcome>;
}

/**
 * A Publisher that refuses every message, as Pub/Sub does when it is down or
 * the topic's permission is missing. The only stand-in these tests use: a
 * real emulator cannot be made to refuse one publish on cue.
 */
export function failingPublisher(): Publisher & { attempts: number } {
  const publisher = {
    attempts: 0,
    async publishJson(topic: string): Promise<string> {
      publisher.attempts++;
      throw new StorageError(`could not publish to pub/sub topic ${topic}: unavailable (test)`, true);
    },
    async close() {},
  };
  return publisher;
}

/** `bytes` with one byte inverted at `offset`. */
export function flipped(bytes: Buffer, offset: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] ^= 0xff;
  return copy;
}
