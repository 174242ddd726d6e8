/**
 * gcloud's real Pub/Sub emulator (`gcloud beta emulators pubsub start`, a Java
 * server behind a Python launcher) on a free loopback port, with the few
 * admin calls the local pipeline needs, made over the emulator's REST API so
 * that starting it does not load the gRPC client. Clients reach it through
 * `env` (PUBSUB_EMULATOR_HOST) or `clientOptions` (for `new PubSub(...)`).
 *
 * The emulator keeps everything in memory: topics and subscriptions are gone
 * after a restart, whatever `dir` is.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnGroup, waitUntilReady, type GroupChild } from '../process/child.ts';
import { onFreePort, PortTakenError } from '../process/port.ts';

/** How to start the emulator. */
export interface PubSubEmulatorOptions {
  /** state directory (gcloud's config and the emulator's data dir); default a temp dir that close() removes */
  dir?: string;
  /** the project the helpers create topics and subscriptions in; the emulator itself accepts any */
  projectId: string;
  /** port on 127.0.0.1; default a free one (retried if taken meanwhile) */
  port?: number;
  /**
   * the environment gcloud runs in; PATH must find gcloud and java. Default
   * PATH=/usr/local/bin:/usr/bin:/bin. CLOUDSDK_CONFIG and prompt/update-check
   * switches are always set on top so the user's gcloud config is not touched.
   */
  env?: Readonly<Record<string, string>>;
  /** how long to wait for the emulator to serve; default 120 s (the JVM starts slowly on a loaded machine) */
  readyTimeoutMs?: number;
}

/** A running emulator. */
export interface PubSubEmulator {
  /** `127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST */
  readonly host: string;
  readonly projectId: string;
  /** PUBSUB_EMULATOR_HOST and PUBSUB_PROJECT_ID, for a child that publishes or subscribes */
  readonly env: Readonly<Record<string, string>>;
  /** options for `new PubSub(options)` that reach the emulator without touching process.env */
  readonly clientOptions: Readonly<{ apiEndpoint: string; emulatorMode: true; projectId: string }>;
  /** create topic `name` in projectId; resolves to `projects/P/topics/NAME`; an existing topic is fine */
  createTopic(name: string): Promise<string>;
  /**
   * Create a push subscription on topic `topic` (a name in projectId) that
   * POSTs `{subscription, message}` to `pushEndpoint`; an existing one gets
   * this endpoint. Resolves to `projects/P/subscriptions/NAME`.
   */
  createPushSubscription(name: string, topic: string, pushEndpoint: string): Promise<string>;
  /** create a pull subscription on topic `topic`; an existing one is kept as it is; resolves to its full name */
  createPullSubscription(name: string, topic: string): Promise<string>;
  /** kill the emulator's whole process group (launcher and JVM) and remove the dir if it was made here; idempotent */
  close(): Promise<void>;
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Start the emulator; resolves once it answers on its REST API. Rejects with
 * the tail of its output if gcloud cannot be run, the emulator exits, or it
 * is not ready within `readyTimeoutMs`; nothing is left running then.
 */
export async function startPubSubEmulator(options: PubSubEmulatorOptions): Promise<PubSubEmulator> {
  const { projectId } = options;
  const ownsDir = options.dir === undefined;
  const dir = ownsDir ? await mkdtemp(path.join(os.tmpdir(), 'gcwal-pubsub-')) : path.resolve(options.dir!);
  try {
    const config = path.join(dir, 'gcloud');
    const data = path.join(dir, 'data');
    await mkdir(config, { recursive: true });
    await mkdir(data, { recursive: true });
    const env: Record<string, string> = {
      ...(options.env ?? { PATH: DEFAULT_PATH }),
      CLOUDSDK_CONFIG: config,
      CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
      CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
      CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    };
    const { child, port } = await onFreePort(options.port, (port) => launch(port, env, data, projectId, options.readyTimeoutMs ?? 120_000));
    const host = `127.0.0.1:${port}`;
    const admin = (method: string, resource: string, body: unknown) => call(host, method, resource, body);
    const topicName = (name: string) => `projects/${projectId}/topics/${name}`;
    const subscriptionName = (name: string) => `projects/${projectId}/subscriptions/${name}`;

    let closing: Promise<void> | undefined;
    return {
      host,
      projectId,
      env: Object.freeze({ PUBSUB_EMULATOR_HOST: host, PUBSUB_PROJECT_ID: projectId }),
      clientOptions: Object.freeze({ apiEndpoint: host, emulatorMode: true, projectId }),
      async createTopic(name) {
        check(await admin('PUT', topicName(name), {}), true);
        return topicName(name);
      },
      async createPushSubscription(name, topic, pushEndpoint) {
        const pushConfig = { pushEndpoint };
        const created = await admin('PUT', subscriptionName(name), { topic: topicName(topic), pushConfig });
        check(created, true);
        if (created.status === 409) check(await admin('POST', `${subscriptionName(name)}:modifyPushConfig`, { pushConfig }), false);
        return subscriptionName(name);
      },
      async createPullSubscription(name, topic) {
        check(await admin('PUT', subscriptionName(name), { topic: topicName(topic) }), true);
        return subscriptionName(name);
      },
      close() {
        closing ??= child.stop().finally(() => (ownsDir ? rm(dir, { recursive: true, force: true, maxRetries: 3 }) : undefined));
        return closing;
      },
    };
  } catch (err) {
    if (ownsDir) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}

/** One start attempt on `port`; the group is stopped again if it does not become ready. */
async function launch(
  port: number,
  env: Record<string, string>,
  data: string,
  projectId: string,
  timeoutMs: number,
): Promise<{ child: GroupChild; port: number }> {
  const what = 'the pub/sub emulator';
  const child = await spawnGroup({
    what,
    command: 'gcloud',
    args: ['beta', 'emulators', 'pubsub', 'start', `--host-port=127.0.0.1:${port}`, `--data-dir=${data}`],
    env,
  });
  try {
    await waitUntilReady(what, {
      child,
      timeoutMs,
      // A JVM that cannot bind logs a BindException and keeps running, so the
      // REST probe alone could reach whoever holds the port: the emulator's
      // own "listening" line has to be there too.
      fatal: () => {
        const bind = /^.*(BindException|Address already in use).*$/m.exec(child.logs());
        return bind ? new PortTakenError(port, bind[0].trim()) : undefined;
      },
      probe: async () => {
        if (!child.logs().includes(`Server started, listening on ${port}`)) return false;
        const res = await fetch(`http://127.0.0.1:${port}/v1/projects/${projectId}/topics`, { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        return res.ok;
      },
    });
    return { child, port };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

interface RestResponse {
  method: string;
  resource: string;
  status: number;
  text: string;
}

async function call(host: string, method: string, resource: string, body: unknown): Promise<RestResponse> {
  const res = await fetch(`http://${host}/v1/${resource}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { method, resource, status: res.status, text: await res.text() };
}

/** Accept 2xx, and 409 (already exists) when `existingIsFine`; throw with the emulator's message otherwise. */
function check(res: RestResponse, existingIsFine: boolean): void {
  if ((res.status >= 200 && res.status < 300) || (existingIsFine && res.status === 409)) return;
  let message = res.text.trim();
  try {
    message = (JSON.parse(res.text) as { error?: { message?: string } }).error?.message ?? message;
  } catch {
    // not JSON: keep the raw text
  }
  throw new Error(`pub/sub emulator: ${res.method} ${res.resource} answered ${res.status}: ${message}`);
}
