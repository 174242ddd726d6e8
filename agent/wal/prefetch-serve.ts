/**
 * wal-fetch's side of prefetching: whether a call may use the spool, serving
 * a segment from it, and telling (or starting) the background prefetcher.
 * Nothing here decides an exit code: when the spool does not serve, wal-fetch
 * fetches the segment itself and reports its own outcome.
 */
import * as path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { recoveryMode } from '../recovery-exit.ts';
import { classifyWalFileName } from '../../core/wal/name.ts';
import type { FileIdentity } from './marker.ts';
import { prefetcherRunning, startPrefetcher, writeRequest } from './prefetch-control.ts';
import { recoveryIdentity, takeSpooled } from './spool.ts';

/** Where and for what a wal-fetch call may use the spool. */
export interface PrefetchScope {
  walDir: string;
  dataDir: string;
  repo: string;
  recovery: FileIdentity;
}

/**
 * The scope of a call, or undefined when prefetch does not apply: turned
 * off (GCWAL_PREFETCH=0), not a full segment name (.history, .partial and
 * .backup files are always fetched), not run by PostgreSQL in recovery in a
 * data directory, or a destination outside its pg_wal.
 */
export async function prefetchScope(config: Config, cwd: string, name: string, dest: string): Promise<PrefetchScope | undefined> {
  if (config.prefetch.depth === 0 || !config.repo || classifyWalFileName(name)?.kind !== 'segment') return undefined;
  if (recoveryMode(cwd) === 'none') return undefined;
  const walDir = path.join(cwd, 'pg_wal');
  if (path.dirname(dest) !== walDir) return undefined;
  const recovery = await recoveryIdentity(cwd);
  return recovery ? { walDir, dataDir: cwd, repo: config.repo, recovery } : undefined;
}

/** Serve `name` from the spool into `dest`; false (and the reason logged) when it does not. */
export async function serveFromSpool(scope: PrefetchScope, name: string, dest: string, log: Logger): Promise<boolean> {
  try {
    const outcome = await takeSpooled(scope.walDir, name, dest, { repo: scope.repo, recovery: scope.recovery });
    if (outcome === 'served') return true;
    if (outcome === 'damaged' || outcome === 'changed')
      log.warn(`the prefetched ${name} was ${outcome} in the spool and is not used; fetching it from the repository`);
    else if (outcome !== 'absent') log.debug(`the spool's ${name} is not used (${outcome})`);
  } catch (err) {
    log.debug(`serving ${name} from the spool failed; fetching it from the repository`, { error: err instanceof Error ? err.message : String(err) });
  }
  return false;
}

/**
 * Tell the prefetcher that PostgreSQL asked for `name`, starting one when
 * none runs. Never throws: prefetching is only ever a saving.
 */
export async function requestPrefetch(scope: PrefetchScope, name: string, env: Readonly<Record<string, string | undefined>>, log: Logger): Promise<void> {
  try {
    await writeRequest(scope.walDir, name);
    if (!(await prefetcherRunning(scope.walDir))) startPrefetcher(scope.walDir, scope.dataDir, env);
  } catch (err) {
    log.debug('could not start prefetching', { error: err instanceof Error ? err.message : String(err) });
  }
}
