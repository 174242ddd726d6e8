/**
 * All parts of a backup, `concurrency` at a time, each retried from its
 * start after a transient storage failure (what the attempt wrote is deleted
 * first). The first real failure stops the others.
 */
import type { BackupMeta } from '../../core/backup/meta.ts';
import { CorruptObjectError, NotFoundError, StorageError } from '../../core/errors.ts';
import type { Storage } from '../../core/storage/types.ts';
import type { Logger } from '../log.ts';
import { type ExtractTarget, newLedger, undoAttempt } from './extract.ts';
import { FileFinisher } from './file-finisher.ts';
import { restorePart } from './part.ts';
import { retry } from '../../core/retry.ts';

/**
 * Files finished (mode, times, fsync, close) at once behind the extraction:
 * two of libuv's four threads, so writes and reads always have the others.
 */
const FINISH_PARALLEL = 2;
/** Written files that may wait for their fsync, open, at once. */
const FINISH_MAX_OPEN = 64;

/** How restoreParts runs. */
export interface PartsOptions {
  concurrency: number;
  /** retries of a part after a transient storage failure */
  retries: number;
  /** first retry delay in milliseconds, doubled each time (default 200, capped at 10 s) */
  backoffMs?: number;
  log: Logger;
  signal?: AbortSignal;
}

/**
 * Restore every part of `meta` into `target`. Returns the files and bytes
 * written, every file fsynced and closed. Throws the first failure: CorruptObjectError (a part missing from
 * the repository counts as corruption of the backup), a StorageError that is
 * permanent or still failing after `retries`, or the abort.
 */
export async function restoreParts(
  storage: Storage,
  meta: BackupMeta,
  target: ExtractTarget,
  options: PartsOptions,
): Promise<{ files: number; bytes: number }> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const totals = { files: 0, bytes: 0 };
  const finisher = new FileFinisher({ parallel: FINISH_PARALLEL, maxOpen: FINISH_MAX_OPEN });
  target = { ...target, finisher };
  let next = 0;
  let failure: unknown;

  const one = async (index: number) => {
    const part = meta.parts[index];
    let ledger = newLedger();
    return retry(
      async () => {
        ledger = newLedger();
        try {
          return await restorePart(storage, part, index, target, ledger, signal);
        } catch (err) {
          if (err instanceof NotFoundError) {
            throw new CorruptObjectError(
              `part ${index} (${part.key}) of backup ${meta.name} is missing from the repository`,
              'the backup is damaged; restore another backup',
              { cause: err },
            );
          }
          throw err;
        }
      },
      {
        retries: options.retries,
        baseMs: options.backoffMs ?? 200,
        maxMs: 10_000,
        transient: (err) => err instanceof StorageError && err.transient,
        onRetry: async (retry, err, delayMs) => {
          await undoAttempt(ledger, target);
          options.log.warn(`reading part ${index} of ${meta.name} failed, retrying it (${retry}/${options.retries})`, {
            error: (err as StorageError).message,
            delayMs: Math.round(delayMs),
          });
        },
        signal,
      },
    );
  };

  const lane = async () => {
    while (next < meta.parts.length && failure === undefined) {
      const index = next++;
      try {
        const result = await one(index);
        totals.files += result.files;
        totals.bytes += result.bytes;
      } catch (err) {
        // Keep the first error: the others are mostly the aborts it caused.
        if (failure === undefined) failure = err;
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, meta.parts.length)) }, lane));
  // Every file handed to the finisher is closed before this returns, fsynced unless something failed.
  await finisher.drain().catch((err: unknown) => {
    if (failure === undefined) failure = err;
  });
  if (failure !== undefined) throw failure;
  return totals;
}
