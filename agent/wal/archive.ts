/**
 * What archive_command does for one file once the launcher has passed it to
 * Node (README.md here): the marker's answer, the helper thread policy, the
 * push itself, then push-ahead of the segments PostgreSQL will ask for next.
 * agent/commands/wal-push.ts only builds the options from the configuration.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import type { LzopHelper } from '../../core/codec/lzo/parallel.ts';
import type { CodecName } from '../../core/codec/types.ts';
import type { Storage } from '../../core/storage/types.ts';
import { classifyWalFileName } from '../../core/wal/name.ts';
import type { Logger } from '../log.ts';
import { wantsLzopHelper } from './helper.ts';
import { takeMarker } from './marker.ts';
import { warnNewerWalOnce } from './newer-format.ts';
import type { PushOptions } from './push.ts';

export interface ArchiveOptions {
  /** the repository URL (GCWAL_REPO); without one no marker can vouch for a push */
  repo: string | undefined;
  codec: CodecName;
  level: number | undefined;
  /** retries of a whole push after a transient storage failure */
  retries: number;
  /** opens the repository; called only when a marker did not answer */
  storage(): Promise<Storage>;
  log: Logger;
  signal: AbortSignal;
  /** the lzo helper thread the WAL entry started early (early-helper.ts), if any */
  lzopHelper?: LzopHelper;
  /**
   * asynchronous mode (GCWAL_ARCHIVE_ASYNC): a full segment is left to the
   * background archiver (archiver.ts), started when none runs, and this call
   * waits for its marker before pushing the file itself
   */
  async?: { env: Readonly<Record<string, string | undefined>>; timeoutMs?: number };
}

/**
 * Archive the file at `filePath` (absolute, in pg_wal): resolves once it is
 * durable in the repository (or was archived ahead by an earlier call, as
 * its marker says), having then archived up to AHEAD_LIMIT further ready
 * segments ahead (ahead.ts). Throws a GcwalError when the file cannot be
 * archived; failures while pushing ahead are only logged.
 */
export async function archiveWalFile(filePath: string, options: ArchiveOptions): Promise<void> {
  const started = Date.now();
  const name = path.basename(filePath);
  const walDir = path.dirname(filePath);
  // Checked before the repository is opened: for gs:// that alone loads
  // the Cloud Storage client, which takes longer than a whole push here.
  const marker = options.repo ? await takeMarker(walDir, name, options.repo, filePath) : undefined;
  if (marker) {
    void options.lzopHelper?.stop();
    options.log.debug(`${name} was archived ahead by an earlier wal-push`, { key: marker.key, rawBytes: marker.rawSize, ms: Date.now() - started });
    return;
  }
  if (options.async && options.repo && (await archivedInBackground(filePath, options.repo, options.async, options))) {
    void options.lzopHelper?.stop();
    return;
  }
  // Started first (if the entry has not already): its thread is slow to
  // start, in parallel with everything below, and joins the compression
  // when it is ready. One started early for nothing is stopped.
  const wanted = wantsLzopHelper(options.codec, options.level, availableParallelism());
  if (!wanted) void options.lzopHelper?.stop();
  const lzopHelper = wanted ? (options.lzopHelper ?? (await import('../../core/codec/lzo/parallel.ts')).startLzopHelper()) : undefined;
  try {
    await pushWithHelper(filePath, options, lzopHelper, started);
  } finally {
    // Not awaited: the thread is unref'd and the process exits after this.
    void lzopHelper?.stop();
  }
}

/**
 * Asynchronous mode: whether the background archiver made the full segment
 * at `filePath` durable (its marker) within the wait, having started the
 * archiver if none ran. False, and the caller pushes the file itself, for a
 * .history, .partial or .backup file (always pushed by PostgreSQL's own
 * call: a promotion's files must not wait behind a queue), outside a pg_wal
 * with archive_status, and whenever the archiver is failing or gone.
 */
async function archivedInBackground(filePath: string, repo: string, async: NonNullable<ArchiveOptions['async']>, options: ArchiveOptions): Promise<boolean> {
  const name = path.basename(filePath);
  const walDir = path.dirname(filePath);
  // The archiver pushes only what PostgreSQL marked ready.
  if (classifyWalFileName(name)?.kind !== 'segment' || !existsSync(path.join(walDir, 'archive_status', `${name}.ready`))) return false;
  const started = Date.now();
  const { ensureArchiver, waitForMarker } = await import('./archiver-control.ts');
  try {
    const running = await ensureArchiver(walDir, async.env);
    // One just started has a moment to take its pid file before its absence counts.
    // The launcher sets GCWAL_ARCHIVE_WAITED when it waited its whole time already: no second wait then.
    const timeoutMs = async.env.GCWAL_ARCHIVE_WAITED === '1' && running ? 0 : async.timeoutMs;
    const marker = await waitForMarker(walDir, filePath, repo, { timeoutMs, startMs: running ? 0 : 5000, signal: options.signal });
    if (marker) {
      options.log.debug(`${name} was archived by the background archiver`, { key: marker.key, rawBytes: marker.rawSize, ms: Date.now() - started });
      return true;
    }
  } catch (err) {
    options.log.debug('the background archiver could not be used', { error: err instanceof Error ? err.message : String(err) });
  }
  options.log.debug(`the background archiver has not archived ${name}; pushing it here`, { ms: Date.now() - started });
  return false;
}

/** The push itself, once the marker did not answer. */
async function pushWithHelper(filePath: string, archive: ArchiveOptions, lzopHelper: LzopHelper | undefined, started: number): Promise<void> {
  const name = path.basename(filePath);
  const walDir = path.dirname(filePath);
  const { log } = archive;
  // Loaded only now, so an answer from a marker does not compile the codecs.
  const [{ pushWalFile }, { pushAhead }, storage] = await Promise.all([import('./push.ts'), import('./ahead.ts'), archive.storage()]);
  const options: PushOptions = {
    codec: archive.codec,
    level: archive.level,
    signal: archive.signal,
    retries: archive.retries,
    onRetry: (attempt, err) => log.warn(`archiving ${name} failed, retrying`, { attempt, error: err.message }),
    // The segments pushed ahead are this cluster's too: gcwal.json is read once per run, not once per segment.
    identity: {},
    lzopHelper,
  };
  const result = await pushWalFile(storage, filePath, options);
  if (result.newerWalMagic !== undefined) await warnNewerWalOnce(walDir, result.newerWalMagic, (message) => log.warn(message));
  const fields = { key: result.key, rawBytes: result.rawSize, storedBytes: result.storedSize, helperBlocks: result.helperBlocks, ms: Date.now() - started };
  if (result.status === 'archived') log.debug(`archived ${name}`, fields);
  else log.info(`${name} was already archived with identical content`, fields);

  // The segment PostgreSQL asked for is durable; what follows only saves
  // later calls work, and its failures are left for those calls to meet.
  // In asynchronous mode the background archiver does that.
  if (archive.async) return;
  const ahead = await pushAhead(walDir, name, {
    repo: archive.repo!,
    push: (next) => pushWalFile(storage, next, { ...options, onRetry: undefined }),
    signal: archive.signal,
    onError: (next, err) =>
      log.debug(`could not archive ${next} ahead; it will be pushed when PostgreSQL asks`, { error: err instanceof Error ? err.message : String(err) }),
  });
  if (ahead.length > 0)
    log.debug(`archived ${ahead.length} more ready segment${ahead.length === 1 ? '' : 's'} ahead`, { segments: ahead.join(','), ms: Date.now() - started });
}
