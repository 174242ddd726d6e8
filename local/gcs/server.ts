/**
 * gcwal's local Google Cloud Storage: a JSON-API emulator on loopback that
 * real clients (the `@google-cloud/storage` Node client, `gcloud storage`,
 * pgBackRest's gcs repository type) can use unmodified. Objects persist in a
 * state directory across restarts; auth is enforced when an AccessControl is
 * given; faults can be injected; object events go out as CloudEvents or
 * Pub/Sub notifications. docs/gcs-wire-format.md is the wire format it follows.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { AccessControl } from '../auth/types.ts';
import { createBucketRecord } from './buckets-api.ts';
import type { Backend } from './context.ts';
import { dispatch, type DispatchState, type RequestCounters } from './dispatch.ts';
import { EventDispatcher, type EventCounters, type EventTarget } from './events.ts';
import { FaultInjector, type FaultPlan } from './faults.ts';
import { rateLimiterFor } from './rate-limit.ts';
import { Sessions } from './sessions.ts';
import { Store } from './store.ts';
import { ensureCertificate } from './tls.ts';

export type { EventTarget } from './events.ts';
export type { FaultPlan } from './faults.ts';

/** How to start an emulator. */
export interface GcsEmulatorOptions {
  /** state directory: objects persist here across restarts */
  dir: string;
  /** HTTP port on 127.0.0.1; 0/undefined = a free port */
  port?: number;
  /** also serve HTTPS with a self-signed cert (for pgBackRest/gsutil) */
  https?: boolean | { port?: number };
  /** undefined = auth not enforced (anyone may do anything) */
  access?: AccessControl;
  /** where object events go */
  events?: EventTarget[];
  /**
   * Least milliseconds between two mutations of one object name, as Cloud
   * Storage allows about one a second (429 `rateLimitExceeded` beyond).
   * Default 1000; `false` or 0 turns the limit off.
   */
  objectRateLimitMs?: number | false;
}

/** A running emulator. */
export interface GcsEmulator {
  /** http://127.0.0.1:PORT (no trailing slash) */
  readonly url: string;
  /** https://127.0.0.1:PORT when HTTPS was asked for */
  readonly httpsUrl: string | undefined;
  /** the self-signed certificate (PEM) when HTTPS was asked for */
  readonly caCertPath: string | undefined;
  /** create a bucket, bypassing auth; idempotent (an existing bucket is left as it is) */
  createBucket(name: string, options?: { retentionPeriodSeconds?: number; location?: string }): Promise<void>;
  /** replace the fault plan (undefined = no faults) */
  setFaults(plan: FaultPlan | undefined): void;
  /** replace the event targets */
  setEvents(targets: EventTarget[]): void;
  stats(): { requests: number; faults: number; faultKinds: Record<string, number>; eventsDelivered: number; eventsFailed: number };
  /** stop listening, destroy open connections, drop undelivered events; resolves when closed */
  close(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port }, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('cannot determine the listening port'));
      else resolve(address.port);
    });
  });
}

/** Track connections so close() can end keep-alive and in-flight ones at once. */
function trackSockets(server: Server, sockets: Set<Socket>): void {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
}

function configure(server: Server): Server {
  // Uploads of large objects may take long; GCS keeps idle connections open
  // for minutes, and a client reusing a connection the server just closed
  // sees ECONNRESET on a request that may not be retried.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  return server;
}

/** Start an emulator as `options` say; resolves once it is listening. */
export async function startGcsEmulator(options: GcsEmulatorOptions): Promise<GcsEmulator> {
  const store = await Store.open(options.dir);
  const counters: RequestCounters = { requests: 0, faults: 0, faultKinds: {} };
  const eventCounters: EventCounters = { eventsDelivered: 0, eventsFailed: 0 };
  const events = new EventDispatcher(options.events ?? [], eventCounters);
  const backend: Backend = {
    store,
    sessions: new Sessions(),
    events,
    access: options.access,
    eventsBaseUrl: '',
    rateLimit: rateLimiterFor(options.objectRateLimitMs),
  };
  let injector: FaultInjector | undefined;
  const closing = new AbortController();
  const state: DispatchState = { backend, counters, faults: () => injector, closing: closing.signal };
  const sockets = new Set<Socket>();
  const handler = (scheme: 'http' | 'https') => (req: IncomingMessage, res: ServerResponse) => void dispatch(state, req, res, scheme);

  const servers: Server[] = [];
  try {
    const http = configure(createHttpServer(handler('http')));
    trackSockets(http, sockets);
    servers.push(http);
    const port = await listen(http, options.port ?? 0);
    const url = `http://${LOOPBACK}:${port}`;
    backend.eventsBaseUrl = url;

    let httpsUrl: string | undefined;
    let caCertPath: string | undefined;
    if (options.https) {
      const tls = await ensureCertificate(store.dir);
      const https = configure(createHttpsServer({ cert: tls.cert, key: tls.key }, handler('https')) as unknown as Server);
      trackSockets(https, sockets);
      servers.push(https);
      const httpsPort = await listen(https, typeof options.https === 'object' ? (options.https.port ?? 0) : 0);
      httpsUrl = `https://${LOOPBACK}:${httpsPort}`;
      caCertPath = tls.certPath;
    }

    let closed: Promise<void> | undefined;
    return {
      url,
      httpsUrl,
      caCertPath,
      async createBucket(name, bucketOptions) {
        await createBucketRecord(store, name, bucketOptions);
      },
      setFaults(plan) {
        injector = plan ? new FaultInjector(plan) : undefined;
      },
      setEvents(targets) {
        events.setTargets(targets);
      },
      stats() {
        return { ...counters, faultKinds: { ...counters.faultKinds }, ...eventCounters };
      },
      close() {
        closing.abort();
        closed ??= closeAll(servers, sockets, events);
        return closed;
      },
    };
  } catch (err) {
    closing.abort();
    await closeAll(servers, sockets, events);
    throw err;
  }
}

async function closeAll(servers: Server[], sockets: Set<Socket>, events: EventDispatcher): Promise<void> {
  events.close();
  const done = servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())));
  for (const socket of sockets) socket.destroy();
  await Promise.all(done);
}
