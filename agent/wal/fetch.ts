import { randomToken } from '../../core/random-token.ts';
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fsyncPath } from '../../core/fsync.ts';
import { CorruptObjectError, GcwalError, InvalidInputError, StorageError } from '../../core/errors.ts';
import { walObjectKey } from '../../core/layout.ts';
import { requireRepositoryIdentity } from '../../core/repository.ts';
import { openDecoded } from '../../core/storage/decode.ts';
import type { Storage } from '../../core/storage/types.ts';
import { classifyWalFileName } from '../../core/wal/name.ts';
import type { Logger } from '../log.ts';
import { retry } from '../../core/retry.ts';

export interface FetchOptions {
  /** retries of a transient failure (and one retry of a corrupt read) */
  retries: number;
  log: Logger;
  signal?: AbortSignal;
  /** base backoff in ms; doubled per attempt, with jitter */
  backoffMs?: number;
}

/**
 * Restore one WAL file from the repository to `dest`, atomically: the
 * content is decoded into a temp file next to `dest`, verified (stored and
 * raw size and CRC32C), fsynced, then renamed. Returns 'not-found' only when
 * the repository exists (has its gcwal.json) and has no such object; a
 * repository without gcwal.json is RepositoryMissingError; every other failure throws (a
 * transient one after `retries` attempts) and leaves `dest` untouched.
 */
export async function fetchWalFile(storage: Storage, name: string, dest: string, options: FetchOptions): Promise<'fetched' | 'not-found'> {
  if (!classifyWalFileName(name)) {
    throw new InvalidInputError(`${name} is not a WAL file name`, 'restore_command passes %f, a segment, .partial, .history or .backup name');
  }
  const key = walObjectKey(name);
  let corruptRetried = false;
  return retry<'fetched' | 'not-found'>(
    async () => {
      const info = await storage.stat(key, { signal: options.signal });
      if (!info) {
        // Only now, off the hot path: "not in the archive" ends a recovery,
        // so it is said only of a repository that exists. One without
        // gcwal.json (a typo, an unmounted volume) is RepositoryMissingError.
        await requireRepositoryIdentity(storage, { signal: options.signal });
        return 'not-found';
      }
      await downloadTo(storage, info, dest, options.signal);
      return 'fetched';
    },
    {
      retries: options.retries,
      baseMs: options.backoffMs ?? 200,
      maxMs: 10_000,
      transient: (err) => (err instanceof StorageError && err.transient) || (err instanceof CorruptObjectError && !corruptRetried),
      onRetry: (retry, err, delayMs) => {
        if (err instanceof CorruptObjectError) corruptRetried = true;
        options.log.warn(`fetching ${name} failed, retrying`, { attempt: retry, error: (err as GcwalError).message, delayMs: Math.round(delayMs) });
      },
      signal: options.signal,
    },
  );
}

async function downloadTo(storage: Storage, info: Parameters<typeof openDecoded>[1], dest: string, signal?: AbortSignal): Promise<void> {
  const dir = path.dirname(dest);
  const tmp = path.join(dir, `.${path.basename(dest)}.gcwal-${randomToken(4)}.tmp`);
  try {
    const decoded = await openDecoded(storage, info, { signal });
    await pipeline(decoded, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal });
    await fsyncPath(tmp);
    await fs.rename(tmp, dest);
    await fsyncPath(dir);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    if (err instanceof CorruptObjectError && !err.message.includes(info.key)) {
      throw new CorruptObjectError(`${info.key}: ${err.message}`, err.hint, { cause: err });
    }
    if (err instanceof GcwalError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ABORT_ERR') throw new StorageError(`fetching ${info.key} was cancelled`, false, 'the command was interrupted');
    // A codec or checksum module loaded on first use and missing from the install is a broken install, not damage.
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') throw err;
    if (code && /^E[A-Z]+$/.test(code))
      throw new StorageError(`writing ${dest} failed: ${code}`, false, `check that ${dir} exists and is writable with free space`, { cause: err });
    throw new CorruptObjectError(`reading ${info.key} failed: ${(err as Error).message}`, undefined, { cause: err });
  }
}
