/**
 * The events the cold-start benchmark delivers to the functions, and what it
 * reads back: storage CloudEvents captured as the GCS emulator sends them
 * (the requests the local pipeline's functions receive), Pub/Sub
 * CloudEvents shaped as Eventarc delivers a Cloud Scheduler message, and the
 * messages the functions published, pulled from the Pub/Sub emulator.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventRequest } from './function-process.ts';

/** A receiver for the emulator's `cloudevent` deliveries that keeps each request as it came. */
export interface EventCapture {
  /** `http://127.0.0.1:PORT`, for an EventTarget */
  readonly url: string;
  /**
   * The captured finalize request of each object in `names` (full object
   * names), waiting up to `timeoutMs` for the last to arrive.
   */
  waitFor(names: readonly string[], timeoutMs: number): Promise<Map<string, EventRequest>>;
  close(): Promise<void>;
}

/** Headers of a delivery that travel with the event (not the connection's). */
const EVENT_HEADER = /^(ce-|content-type$)/i;

/** Start the receiver on a loopback port; it answers every delivery 204. */
export async function startEventCapture(): Promise<EventCapture> {
  const captured = new Map<string, EventRequest>();
  const server = createServer((req, res) => {
    void readBody(req).then(
      (body) => {
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => EVENT_HEADER.test(k) && typeof v === 'string')) as Record<
          string,
          string
        >;
        const name = (JSON.parse(body) as { name?: string }).name;
        if (headers['ce-type'] === 'google.cloud.storage.object.v1.finalized' && name) captured.set(name, { headers, body });
        res.writeHead(204).end();
      },
      () => res.writeHead(400).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async waitFor(names, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (names.some((n) => !captured.has(n))) {
        if (Date.now() > deadline) throw new Error(`no finalize event for ${names.filter((n) => !captured.has(n)).join(', ')} after ${timeoutMs} ms`);
        await delay(50);
      }
      return new Map(names.map((n) => [n, captured.get(n)!]));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * A Cloud Scheduler tick on `topic` as Eventarc delivers it to a Pub/Sub
 * triggered function: a binary-mode `google.cloud.pubsub.topic.v1.messagePublished`
 * CloudEvent whose data is `{message, subscription}`. Each call is a new
 * message (a new id), as the next tick would be.
 */
export function schedulerEvent(projectId: string, topic: string, job: string): EventRequest {
  const id = randomUUID();
  const time = new Date().toISOString();
  const data = Buffer.from(JSON.stringify({ source: 'bench', job, time })).toString('base64');
  return {
    headers: {
      'Content-Type': 'application/json',
      'ce-specversion': '1.0',
      'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
      'ce-source': `//pubsub.googleapis.com/projects/${projectId}/topics/${topic}`,
      'ce-id': id,
      'ce-time': time,
    },
    body: JSON.stringify({
      subscription: `projects/${projectId}/subscriptions/eventarc-bench-${topic}`,
      message: { data, messageId: id, publishTime: time, attributes: { origin: 'bench' } },
    }),
  };
}

/**
 * Every message waiting on `subscription` (full name) of the Pub/Sub
 * emulator at `host`, acknowledged, with its data parsed as JSON; oldest
 * first as the emulator returns them.
 */
export async function pullAll<T>(host: string, subscription: string): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const res = await fetch(`http://${host}/v1/${subscription}:pull`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ maxMessages: 100, returnImmediately: true }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`pub/sub emulator: pull from ${subscription} answered ${res.status}: ${text.trim()}`);
    const received = (JSON.parse(text) as { receivedMessages?: { ackId: string; message: { data?: string } }[] }).receivedMessages ?? [];
    if (received.length === 0) return out;
    for (const m of received) out.push(JSON.parse(Buffer.from(m.message.data ?? '', 'base64').toString('utf8')) as T);
    const ack = await fetch(`http://${host}/v1/${subscription}:acknowledge`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ackIds: received.map((m) => m.ackId) }),
      signal: AbortSignal.timeout(10_000),
    });
    await ack.arrayBuffer();
    if (!ack.ok) throw new Error(`pub/sub emulator: acknowledge on ${subscription} answered ${ack.status}`);
  }
}
