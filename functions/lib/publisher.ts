/**
 * Publishing JSON messages to Pub/Sub topics. The functions depend on the
 * small `Publisher` interface; `pubSubPublisher` is the adapter on
 * @google-cloud/pubsub (loaded only when first used, so a cold start of a
 * function that publishes nothing does not pay for gRPC).
 */
import { StorageError } from '../../core/errors.ts';

export interface Publisher {
  /**
   * Publish `body` as JSON to `topic` (a short name in the configured project).
   * Resolves with the message id once Pub/Sub has accepted it; throws
   * StorageError when it did not (the caller's event is then retried).
   */
  publishJson(topic: string, body: unknown, attributes?: Record<string, string>): Promise<string>;
  /** flush and release connections; idempotent */
  close(): Promise<void>;
}

export interface PubSubPublisherOptions {
  projectId: string | undefined;
  /** host:port of an emulator; undefined = Google */
  emulatorHost: string | undefined;
}

/** A Publisher on the real Pub/Sub client. Creates no connection until the first publish. */
export function pubSubPublisher(options: PubSubPublisherOptions): Publisher {
  type Client = import('@google-cloud/pubsub').PubSub;
  let client: Promise<Client> | undefined;
  const connect = () => {
    client ??= import('@google-cloud/pubsub').then(
      ({ PubSub }) =>
        new PubSub({
          projectId: options.projectId,
          ...(options.emulatorHost ? { apiEndpoint: options.emulatorHost, emulatorMode: true } : {}),
        }),
    );
    return client;
  };
  return {
    async publishJson(topic, body, attributes = {}) {
      const pubsub = await connect();
      try {
        return await pubsub.topic(topic).publishMessage({ data: Buffer.from(JSON.stringify(body)), attributes });
      } catch (err) {
        throw new StorageError(
          `could not publish to pub/sub topic ${topic}: ${(err as Error).message}`,
          true,
          'check the topic exists and the function may publish to it (roles/pubsub.publisher)',
          { cause: err },
        );
      }
    },
    async close() {
      if (!client) return;
      const pubsub = await client;
      await pubsub.close();
    },
  };
}
