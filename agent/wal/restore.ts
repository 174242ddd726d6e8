/**
 * What restore_command does for one file once the launcher has passed it to
 * Node (README.md here): the prefetch spool's answer, a request to the
 * prefetcher (started if need be), then the fetch from the repository.
 * agent/commands/wal-fetch.ts only builds the options and turns the outcome
 * into an exit code.
 */
import type { Storage } from '../../core/storage/types.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { fetchWalFile } from './fetch.ts';
import { prefetchScope, requestPrefetch, serveFromSpool } from './prefetch-serve.ts';

export interface RestoreOptions {
  /** the configuration: the repository and the prefetch settings */
  config: Config;
  /** the working directory: the data directory when PostgreSQL runs the command */
  cwd: string;
  /** the environment, passed on to a prefetcher this call starts */
  env: Readonly<Record<string, string | undefined>>;
  /** opens the repository; called only when the spool did not serve */
  storage(): Promise<Storage>;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Restore the WAL file `name` to `destPath` (absolute): from the spool when
 * the prefetcher holds it for this repository and restore, else from the
 * repository. 'not-found' only when the repository exists and has no such
 * file; every failure throws (a spool that cannot serve is never one: the
 * file is then fetched).
 */
export async function restoreWalFile(name: string, destPath: string, options: RestoreOptions): Promise<'restored' | 'not-found'> {
  const { config, cwd, log } = options;
  const scope = await prefetchScope(config, cwd, name, destPath);
  if (scope) {
    const served = await serveFromSpool(scope, name, destPath, log);
    await requestPrefetch(scope, name, options.env, log);
    if (served) {
      log.debug(`restored ${name} from the prefetch spool`);
      return 'restored';
    }
  }
  const storage = await options.storage();
  const result = await fetchWalFile(storage, name, destPath, { retries: config.retries, log, signal: options.signal });
  if (result === 'not-found') {
    log.info(`${name} is not in the archive`);
    return 'not-found';
  }
  log.debug(`restored ${name}`);
  return 'restored';
}
