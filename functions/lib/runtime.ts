/**
 * What every function needs, built once per process from its environment:
 * the configuration, the repository, the catalogue's storage, a publisher and
 * a logger. Handlers receive a Runtime and never read process.env. Clients
 * are created lazily and reused across invocations, as Cloud Functions
 * recommends (an instance serves many events).
 */
import { openStorage } from '../../core/storage/open.ts';
import type { Storage } from '../../core/storage/types.ts';
import { readFunctionsConfig, type FunctionsConfig } from '../config.ts';
import { jsonLogger, type FunctionLogger } from './log.ts';
import { pubSubPublisher, type Publisher } from './publisher.ts';

export interface Runtime {
  config: FunctionsConfig;
  /** the watched repository */
  storage(): Promise<Storage>;
  /** where the catalogue lives (the repository unless GCWAL_CATALOGUE_REPO) */
  catalogueStorage(): Promise<Storage>;
  publisher: Publisher;
  log: FunctionLogger;
  now(): Date;
}

export interface RuntimeOverrides {
  publisher?: Publisher;
  log?: FunctionLogger;
  now?: () => Date;
}

/**
 * Build a Runtime from an environment. Throws UsageError (from the config
 * table) when the environment is incomplete, so a mis-deployed function fails
 * on its first event with a message naming the variable.
 */
export function createRuntime(env: Readonly<Record<string, string | undefined>>, overrides: RuntimeOverrides = {}): Runtime {
  const config = readFunctionsConfig(env);
  const gcs = { endpoint: config.gcsEndpoint, projectId: config.projectId };
  let storage: Promise<Storage> | undefined;
  let catalogue: Promise<Storage> | undefined;
  return {
    config,
    storage: () => (storage ??= openStorage(config.repo, { gcs })),
    catalogueStorage: () =>
      (catalogue ??= config.catalogueRepo === config.repo ? (storage ??= openStorage(config.repo, { gcs })) : openStorage(config.catalogueRepo, { gcs })),
    publisher: overrides.publisher ?? pubSubPublisher({ projectId: config.projectId, emulatorHost: config.pubsubEmulatorHost }),
    log: overrides.log ?? jsonLogger((line) => process.stdout.write(line)),
    now: overrides.now ?? (() => new Date()),
  };
}

/**
 * A handler factory's view of its runtime: created on the first event (not at
 * import, so a bad environment surfaces as a failed event with a clear log
 * line rather than a crash loop), then reused.
 */
export function lazyRuntime(make: () => Runtime): () => Runtime {
  let runtime: Runtime | undefined;
  return () => (runtime ??= make());
}
