/**
 * A real Pub/Sub subscriber (the @google-cloud/pubsub streaming pull any
 * consumer of gcwal's topics would use) that keeps every message of one pull
 * subscription in arrival order, so a test or the demo can wait for the
 * message it expects without dropping the others. Messages are acked once
 * kept; a redelivered one (Pub/Sub is at least once) is kept again, as a
 * consumer would see it.
 */

/** One received message, its data parsed as JSON (the raw text when it is not JSON). */
export interface InboxMessage<T = unknown> {
  id: string;
  data: T;
  attributes: Record<string, string>;
  /** when Pub/Sub accepted the message */
  publishTime: Date;
  /** when this subscriber received it */
  received: Date;
}

/** A subscriber's kept messages. */
export interface Inbox<T = unknown> {
  /** the full subscription name, `projects/P/subscriptions/S` */
  readonly subscription: string;
  /** start pulling (the first `next` or `received` does too); idempotent */
  start(): void;
  /** everything received so far, oldest first */
  received(): InboxMessage<T>[];
  /**
   * The oldest message not yet returned by `next` whose data satisfies
   * `predicate`, waiting for it up to `timeoutMs` (default 30 s). Rejects on
   * timeout with what did arrive, and on a subscriber error.
   */
  next(predicate?: (data: T, message: InboxMessage<T>) => boolean, timeoutMs?: number): Promise<InboxMessage<T>>;
  /** stop pulling and release the client; idempotent */
  close(): Promise<void>;
}

/** `new PubSub(options)` for an emulator; PubSubEmulator.clientOptions fits. */
export interface InboxClientOptions {
  apiEndpoint: string;
  emulatorMode: true;
  projectId: string;
}

interface Waiter<T> {
  predicate: (data: T, message: InboxMessage<T>) => boolean;
  resolve: (message: InboxMessage<T>) => void;
  reject: (err: Error) => void;
}

/**
 * An inbox on `subscription` (a short name in the client's project). Nothing
 * connects until `start`: the gRPC client is loaded only by whoever reads.
 * The subscription must exist; messages published after it was created are
 * kept by Pub/Sub until the inbox starts.
 */
export function openInbox<T = unknown>(client: InboxClientOptions, subscription: string): Inbox<T> {
  type PubSubModule = typeof import('@google-cloud/pubsub');
  type Subscription = import('@google-cloud/pubsub').Subscription;
  const messages: InboxMessage<T>[] = [];
  const taken = new Set<InboxMessage<T>>();
  const waiters = new Set<Waiter<T>>();
  let failure: Error | undefined;
  let running: Promise<{ close(): Promise<void> }> | undefined;
  let closed = false;

  const settle = () => {
    for (const waiter of waiters) {
      const found = messages.find((m) => !taken.has(m) && waiter.predicate(m.data, m));
      if (found) {
        taken.add(found);
        waiters.delete(waiter);
        waiter.resolve(found);
      } else if (failure) {
        waiters.delete(waiter);
        waiter.reject(failure);
      }
    }
  };

  const start = () => {
    if (running || closed) return;
    running = (import('@google-cloud/pubsub') as Promise<PubSubModule>).then(({ PubSub }) => {
      // The universe named up front: otherwise the gRPC stub asks ADC for it, which probes for a metadata server and warns when there is none.
      const pubsub = new PubSub({ ...client, universeDomain: 'googleapis.com' });
      const sub: Subscription = pubsub.subscription(subscription);
      sub.on('message', (m) => {
        const text = m.data.toString('utf8');
        let data: unknown = text;
        try {
          data = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        messages.push({ id: m.id, data: data as T, attributes: { ...m.attributes }, publishTime: new Date(m.publishTime.getTime()), received: new Date() });
        m.ack();
        settle();
      });
      sub.on('error', (err: Error) => {
        failure = new Error(`subscriber of ${subscription} failed: ${err.message}`, { cause: err });
        settle();
      });
      return {
        async close() {
          sub.removeAllListeners('message');
          await sub.close().catch(() => undefined);
          await pubsub.close().catch(() => undefined);
        },
      };
    });
    running.catch((err: Error) => {
      failure = new Error(`cannot start a subscriber on ${subscription}: ${err.message}`, { cause: err });
      settle();
    });
  };

  return {
    subscription: `projects/${client.projectId}/subscriptions/${subscription}`,
    start,
    received() {
      start();
      return [...messages];
    },
    next(predicate = () => true, timeoutMs = 30_000) {
      start();
      return new Promise<InboxMessage<T>>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const seen = messages.map((m) => describe(m.data)).join('; ') || 'nothing';
          reject(new Error(`no matching message on ${subscription} within ${timeoutMs} ms; received: ${seen}`));
        }, timeoutMs);
        const waiter: Waiter<T> = {
          predicate,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        waiters.add(waiter);
        settle();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const waiter of waiters) waiter.reject(new Error(`inbox on ${subscription} closed`));
      waiters.clear();
      if (running) await (await running.catch(() => undefined))?.close();
    },
  };
}

/** A short description of a message for timeout errors: its kind, status and id when it has them. */
function describe(data: unknown): string {
  if (data && typeof data === 'object') {
    const d = data as Record<string, unknown>;
    const parts = [d.kind, d.status, d.id ?? d.key].filter((v) => typeof v === 'string');
    if (parts.length > 0) return parts.join(' ');
  }
  return JSON.stringify(data).slice(0, 80);
}
