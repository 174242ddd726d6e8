/**
 * The serverless pipeline on the local stack, wired as Terraform wires it in
 * a project: gcloud's Pub/Sub emulator with the four topics; the four
 * functions (validate, catalogue, prune, watchdog) from the bundled
 * dist/functions/index.mjs under the real functions-framework, each seeing
 * only its configured variables; the GCS emulator's object events delivered
 * to validate and catalogue as Eventarc CloudEvents; the scheduler topics
 * pushed into prune and watchdog. The functions run as their own service
 * account (object admin on the bucket: the catalogue is replaced and prune
 * deletes) and get its tokens from a metadata-server stand-in of their own,
 * so they authenticate keylessly as a deployed function does.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AlertMessage, PipelineEventMessage } from '../core/alerts/types.ts';
import { emptyCatalogue } from '../core/catalogue/types.ts';
import type { CatalogueSnapshot } from '../core/catalogue/store.ts';
import { UsageError } from '../core/errors.ts';
import { CATALOGUE_KEY } from '../core/layout.ts';
import { parseCatalogueObject } from '../core/catalogue/store.ts';
import { FUNCTIONS_CONFIG_TABLE, readFunctionsConfig } from '../functions/config.ts';
import type { TokenAuthority } from './auth/authority.ts';
import { pubsubPushEndpoint, startFunction, type RunningFunction } from './functions/runner.ts';
import type { EventTarget, GcsEmulator } from './gcs/server.ts';
import { startMetadataServer, type MetadataServer } from './metadata/server.ts';
import { openInbox, type Inbox, type InboxMessage } from './pubsub/inbox.ts';
import { startPubSubEmulator, type PubSubEmulator } from './pubsub/emulator.ts';
import { runCleanups } from './process/cleanups.ts';

/** The four functions, by the name each registers with the framework. */
export const PIPELINE_FUNCTIONS = ['validate', 'catalogue', 'prune', 'watchdog'] as const;
export type PipelineFunction = (typeof PIPELINE_FUNCTIONS)[number];

/** Topic names, as Terraform creates them by default. */
export const PIPELINE_TOPICS = Object.freeze({ events: 'gcwal-events', alerts: 'gcwal-alerts', prune: 'gcwal-prune', watchdog: 'gcwal-watchdog' });

/** Pull subscriptions the stack reads the events and alerts topics through. */
export const PIPELINE_SUBSCRIPTIONS = Object.freeze({ events: 'gcwal-events-local', alerts: 'gcwal-alerts-local' });

/**
 * Function settings the stack decides (where the repository, the APIs and the
 * topics are); `env` may not override them.
 */
const STACK_OWNED = new Set([
  'GCWAL_REPO',
  'GCWAL_CATALOGUE_REPO',
  'GOOGLE_CLOUD_PROJECT',
  'GCWAL_EVENTS_TOPIC',
  'GCWAL_ALERTS_TOPIC',
  'GCWAL_GCS_ENDPOINT',
  'STORAGE_EMULATOR_HOST',
  'PUBSUB_EMULATOR_HOST',
]);

/** How to run the pipeline. */
export interface PipelineOptions {
  /** GCWAL_RETAIN_FULL; default 7 when retainDays is not given either (the functions need a policy) */
  retainFull?: number;
  /** GCWAL_RETAIN_DAYS */
  retainDays?: number;
  /** GCWAL_WAL_RETAIN_DAYS */
  walRetainDays?: number;
  /** GCWAL_PRUNE_DRY_RUN */
  pruneDryRun?: boolean;
  /**
   * Further function settings by variable name, e.g. `{ GCWAL_STALL_MINUTES: '1',
   * GCWAL_GAP_GRACE_MINUTES: '0' }`: any FUNCTIONS_CONFIG_TABLE name except
   * those the stack sets itself (repository, endpoints, project, topics).
   */
  env?: Readonly<Record<string, string>>;
  /** the bundled functions; default <project>/dist/functions/index.mjs (npm run build) */
  source?: string;
  /**
   * environment of gcloud's launcher (it needs PATH to find gcloud and java);
   * default PATH=/usr/local/bin:/usr/bin:/bin. Never passed to the functions.
   */
  toolEnv?: Readonly<Record<string, string>>;
}

/** What the pipeline needs from the stack it joins. */
export interface PipelineHost {
  emulator: GcsEmulator;
  authority: TokenAuthority;
  bucket: string;
  projectId: string;
  /** GCWAL_REPO, `gs://bucket[/prefix]` */
  repo: string;
  /** the host's own event targets, kept alongside the functions' */
  events: readonly EventTarget[];
  /** a bearer token that may read every object */
  adminToken(): string;
}

/** A running pipeline. */
export interface LocalPipeline {
  /** the Pub/Sub emulator (admin helpers, clientOptions) */
  readonly pubsub: PubSubEmulator;
  /** `127.0.0.1:PORT`, for PUBSUB_EMULATOR_HOST */
  readonly pubsubHost: string;
  readonly topics: typeof PIPELINE_TOPICS;
  /** full names of the pull subscriptions on the events and alerts topics */
  readonly subscriptions: { events: string; alerts: string };
  /** the functions' service account */
  readonly identity: string;
  /** the functions' metadata-server stand-in */
  readonly metadata: MetadataServer;
  readonly functions: Readonly<Record<PipelineFunction, RunningFunction>>;
  /** exactly the environment each function runs with (the runner adds FUNCTION_TARGET and K_SERVICE) */
  readonly functionEnv: Readonly<Record<string, string>>;
  /**
   * The next alert message not yet returned whose body satisfies `predicate`,
   * read from gcwal-alerts by a real Pub/Sub subscriber (started on first use;
   * messages published earlier wait in the subscription). Default timeout 30 s.
   */
  nextAlert(predicate?: (alert: AlertMessage) => boolean, timeoutMs?: number): Promise<AlertMessage>;
  /** every alert message received so far, oldest first (starts the subscriber) */
  alerts(): AlertMessage[];
  /** as nextAlert, on gcwal-events (validation outcomes, prune reports) */
  nextEvent(predicate?: (event: PipelineEventMessage) => boolean, timeoutMs?: number): Promise<PipelineEventMessage>;
  /** every events-topic message received so far (starts the subscriber) */
  events(): InboxMessage<PipelineEventMessage>[];
  /**
   * Publish a Cloud Scheduler-like message to the prune or watchdog topic,
   * which pushes it into the function; resolves with the message id once
   * Pub/Sub accepted it (the function runs after that).
   */
  tick(target: 'prune' | 'watchdog'): Promise<string>;
  /** the catalogue as stored (read as admin); empty with generation '0' before the first write */
  readCatalogue(): Promise<CatalogueSnapshot>;
  /** what each function wrote so far (framework output and the JSON log lines) */
  logs(): Record<PipelineFunction, string>;
  /** stop delivering events, then stop the subscribers, functions, Pub/Sub emulator and metadata server; idempotent */
  close(): Promise<void>;
}

const WITHOUT = 'or start the stack without the pipeline (gcwal local --no-pipeline)';

/**
 * The bundled functions beside this module: <project>/dist/functions when it
 * runs from source (tsx), dist/functions when it runs bundled into dist/.
 */
function defaultSource(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../dist/functions/index.mjs'), path.resolve(here, 'functions/index.mjs')];
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}

/**
 * The functions' settings from `options`, checked as the functions will read
 * them (readFunctionsConfig), so a typo or a bad value fails before anything
 * starts rather than on the first event. Throws UsageError naming the
 * variable, for a name outside FUNCTIONS_CONFIG_TABLE, or one the stack owns.
 */
export function pipelineSettings(options: PipelineOptions): Record<string, string> {
  const known = new Set(FUNCTIONS_CONFIG_TABLE.map((e) => e.env));
  const settings: Record<string, string> = {};
  const retainFull = options.retainFull ?? (options.retainDays === undefined ? 7 : undefined);
  if (retainFull !== undefined) settings.GCWAL_RETAIN_FULL = String(retainFull);
  if (options.retainDays !== undefined) settings.GCWAL_RETAIN_DAYS = String(options.retainDays);
  if (options.walRetainDays !== undefined) settings.GCWAL_WAL_RETAIN_DAYS = String(options.walRetainDays);
  if (options.pruneDryRun !== undefined) settings.GCWAL_PRUNE_DRY_RUN = String(options.pruneDryRun);
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!known.has(name))
      throw new UsageError(`${name} is not a setting of the functions`, `use one of ${[...known].filter((n) => !STACK_OWNED.has(n)).join(', ')}`);
    if (STACK_OWNED.has(name)) throw new UsageError(`${name} is set by the local stack`, 'leave it out of the pipeline env');
    settings[name] = value;
  }
  readFunctionsConfig({ GCWAL_REPO: 'gs://settings-check', ...settings });
  return settings;
}

/**
 * Start the pipeline on `host` (whose GCS emulator is already serving).
 * Grants the functions' identity roles/storage.objectAdmin on the bucket.
 * Throws UsageError for bad settings (see pipelineSettings), a missing
 * functions bundle, or no gcloud on `toolEnv`'s PATH. On any failure what was
 * started is stopped again and the host's event targets are restored before
 * the error is rethrown.
 */
export async function startPipeline(host: PipelineHost, options: PipelineOptions = {}): Promise<LocalPipeline> {
  const settings = pipelineSettings(options);
  const source = options.source ?? defaultSource();
  if (!existsSync(source)) throw new UsageError(`the functions bundle ${source} does not exist`, `run npm run build to bundle the functions, ${WITHOUT}`);
  const identity = `gcwal-functions@${host.projectId}.iam.gserviceaccount.com`;
  const prefix = repoPrefix(host.repo, host.bucket);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    host.authority.grant(identity, 'roles/storage.objectAdmin', host.bucket);
    const metadata = await startMetadataServer({ authority: host.authority, identity, projectId: host.projectId });
    cleanups.push(() => metadata.close());

    // The functions' env names the emulator's port, so it starts first.
    const pubsub = await startPubSubEmulator({ projectId: host.projectId, ...(options.toolEnv ? { env: options.toolEnv } : {}) }).catch((err: Error) => {
      if ((err.cause as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') throw err;
      throw new UsageError(
        'cannot run gcloud for the pub/sub emulator: it is not on PATH',
        `install the Google Cloud CLI with its pubsub-emulator component and a Java runtime, ${WITHOUT}`,
        { cause: err },
      );
    });
    cleanups.push(() => pubsub.close());
    const functionEnv: Record<string, string> = {
      GCWAL_REPO: host.repo,
      GOOGLE_CLOUD_PROJECT: host.projectId,
      GCWAL_EVENTS_TOPIC: PIPELINE_TOPICS.events,
      GCWAL_ALERTS_TOPIC: PIPELINE_TOPICS.alerts,
      // Plain HTTP even when the agent uses TLS: the functions need no CA file then.
      GCWAL_GCS_ENDPOINT: host.emulator.url,
      STORAGE_EMULATOR_HOST: host.emulator.url,
      PUBSUB_EMULATOR_HOST: pubsub.host,
      ...settings,
      GCE_METADATA_HOST: metadata.host,
    };
    const started = await Promise.allSettled(
      PIPELINE_FUNCTIONS.map((target) => startFunction({ source, target, signatureType: 'cloudevent', env: functionEnv })),
    );
    for (const result of started) if (result.status === 'fulfilled') cleanups.push(() => result.value.close());
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const functions = Object.fromEntries(PIPELINE_FUNCTIONS.map((name, i) => [name, (started[i] as PromiseFulfilledResult<RunningFunction>).value])) as Record<
      PipelineFunction,
      RunningFunction
    >;

    await Promise.all(Object.values(PIPELINE_TOPICS).map((topic) => pubsub.createTopic(topic)));
    const subscriptions = {
      events: await pubsub.createPullSubscription(PIPELINE_SUBSCRIPTIONS.events, PIPELINE_TOPICS.events),
      alerts: await pubsub.createPullSubscription(PIPELINE_SUBSCRIPTIONS.alerts, PIPELINE_TOPICS.alerts),
    };
    for (const target of ['prune', 'watchdog'] as const) {
      await pubsub.createPushSubscription(
        `${PIPELINE_TOPICS[target]}-push`,
        PIPELINE_TOPICS[target],
        pubsubPushEndpoint(functions[target].url, host.projectId, PIPELINE_TOPICS[target]),
      );
    }

    const alertInbox: Inbox<AlertMessage> = openInbox(pubsub.clientOptions, PIPELINE_SUBSCRIPTIONS.alerts);
    const eventInbox: Inbox<PipelineEventMessage> = openInbox(pubsub.clientOptions, PIPELINE_SUBSCRIPTIONS.events);
    cleanups.push(async () => {
      await Promise.all([alertInbox.close(), eventInbox.close()]);
    });

    // Last: from here on every object change in the repository reaches the functions.
    host.emulator.setEvents([
      ...host.events,
      { kind: 'cloudevent', url: functions.validate.url, types: ['finalized'], ...(prefix ? { prefix } : {}) },
      { kind: 'cloudevent', url: functions.catalogue.url, types: ['finalized', 'deleted'], ...(prefix ? { prefix } : {}) },
    ]);
    cleanups.push(async () => host.emulator.setEvents([...host.events]));

    let closing: Promise<void> | undefined;
    return {
      pubsub,
      pubsubHost: pubsub.host,
      topics: PIPELINE_TOPICS,
      subscriptions,
      identity,
      metadata,
      functions,
      functionEnv: Object.freeze({ ...functionEnv }),
      nextAlert: async (predicate = () => true, timeoutMs) => (await alertInbox.next(predicate, timeoutMs)).data,
      alerts: () => alertInbox.received().map((m) => m.data),
      nextEvent: async (predicate = () => true, timeoutMs) => (await eventInbox.next(predicate, timeoutMs)).data,
      events: () => eventInbox.received(),
      tick: (target) => publish(pubsub, PIPELINE_TOPICS[target], { source: 'gcwal local', job: target, time: new Date().toISOString() }),
      readCatalogue: () => fetchCatalogue(host, `${prefix}${CATALOGUE_KEY}`),
      logs: () => Object.fromEntries(PIPELINE_FUNCTIONS.map((name) => [name, functions[name].logs()])) as Record<PipelineFunction, string>,
      close() {
        closing ??= runCleanups(cleanups);
        return closing;
      },
    };
  } catch (err) {
    await runCleanups(cleanups).catch(() => {});
    throw err;
  }
}

/** The key prefix of `repo` in its bucket: empty or ending in `/`. */
function repoPrefix(repo: string, bucket: string): string {
  const base = `gs://${bucket}`;
  if (repo !== base && !repo.startsWith(`${base}/`))
    throw new UsageError(`the pipeline watches ${repo}, which is not in bucket ${bucket}`, `use a gs://${bucket}/... repository`);
  const rest = repo.slice(base.length).replace(/^\/+|\/+$/g, '');
  return rest ? `${rest}/` : '';
}

/** Publish `body` as JSON to `topic` over the emulator's REST API; resolves with the message id. */
async function publish(pubsub: PubSubEmulator, topic: string, body: unknown): Promise<string> {
  const res = await fetch(`http://${pubsub.host}/v1/projects/${pubsub.projectId}/topics/${topic}:publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ data: Buffer.from(JSON.stringify(body)).toString('base64'), attributes: { origin: 'gcwal-local' } }] }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`pub/sub emulator: publish to ${topic} answered ${res.status}: ${text.trim()}`);
  const id = (JSON.parse(text) as { messageIds?: string[] }).messageIds?.[0];
  if (!id) throw new Error(`pub/sub emulator: publish to ${topic} returned no message id: ${text.trim()}`);
  return id;
}

/** The catalogue object read as admin through the JSON API, with its generation. */
async function fetchCatalogue(host: PipelineHost, name: string): Promise<CatalogueSnapshot> {
  const res = await fetch(`${host.emulator.url}/storage/v1/b/${host.bucket}/o/${encodeURIComponent(name)}?alt=media`, {
    headers: { Authorization: `Bearer ${host.adminToken()}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status === 404) return { catalogue: emptyCatalogue(new Date()), generation: '0' };
  if (!res.ok) throw new Error(`reading gs://${host.bucket}/${name} answered ${res.status}: ${body.toString('utf8').trim()}`);
  const generation = res.headers.get('x-goog-generation');
  if (!generation) throw new Error(`reading gs://${host.bucket}/${name} returned no generation`);
  return { catalogue: parseCatalogueObject(body, `gs://${host.bucket}/${name}`), generation };
}
