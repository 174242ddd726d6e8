import type { BackupPart, ManifestEntry } from '../../core/backup/meta.ts';
import { AlreadyExistsError, StorageError } from '../../core/errors.ts';
import { backupPartKey } from '../../core/layout.ts';
import { adoptStoredPart } from './part-compare.ts';
import type { PlannedPart } from './plan.ts';
import { writePart, type PartWriterOptions } from './tar-parts.ts';
import { retry } from '../../core/retry.ts';

/** Options for writeParts: those of one part, minus its key. */
export interface PartsOptions extends Omit<PartWriterOptions, 'key'> {
  backupName: string;
  /** parts built and uploaded at once */
  concurrency: number;
  /** times a part whose upload failed transiently is rebuilt and uploaded again */
  retries: number;
  /** told about each retry */
  onRetry?: (partIndex: number, attempt: number, err: StorageError) => void;
}

/** Every part as stored, in index order, and the manifest in walk order. */
export interface WrittenParts {
  parts: BackupPart[];
  manifest: ManifestEntry[];
}

/**
 * Run `worker` over `items` with at most `limit` running at once, in index
 * order. The first failure aborts the rest (through `controller`) and is
 * thrown once every running worker has settled.
 */
async function runPool<T>(items: readonly T[], limit: number, controller: AbortController, worker: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await worker(item);
      } catch (err) {
        if (!failure) failure = { err };
        controller.abort(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure) throw failure.err;
}

/**
 * Build and upload the planned parts, up to `concurrency` at once; a part
 * marked `last` (the control file) starts only once all others are stored.
 * On the first failure the other uploads are aborted and the error thrown;
 * parts already stored stay (invisible without backup.json).
 */
export async function writeParts(plans: readonly PlannedPart[], options: PartsOptions): Promise<WrittenParts> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal.reason);
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener('abort', onAbort, { once: true });
  const results: { part: BackupPart; manifest: ManifestEntry[] }[] = [];
  const one = async (plan: PlannedPart) => {
    const key = backupPartKey(options.backupName, plan.index);
    // Progress of a failed attempt is taken back so the display stays true.
    let bytes = 0;
    let files = 0;
    const written = await retry(
      async () => {
        bytes = 0;
        files = 0;
        const onProgress = (b: number, f: number) => {
          bytes += b;
          files += f;
          options.onProgress?.(b, f);
        };
        try {
          return await writePart(plan, { ...options, onProgress, signal: controller.signal, key });
        } catch (err) {
          if (err instanceof AlreadyExistsError) return undefined;
          throw err;
        }
      },
      {
        // A transient failure is taken to have published nothing, so the
        // part is rebuilt under the same key (create-only: if it did land,
        // the retry meets it, below).
        retries: options.retries,
        baseMs: 500,
        maxMs: 30_000,
        jitter: false,
        transient: (err) => err instanceof StorageError && err.transient,
        onRetry: (retry, err) => {
          options.onProgress?.(-bytes, -files);
          options.onRetry?.(plan.index, retry, err as StorageError);
        },
        signal: controller.signal,
      },
    );
    // Already there: an earlier attempt landed though it seemed to fail (its
    // answer lost); kept only if it holds this part, as this attempt built it.
    results[plan.index] = written ?? (await adoptStoredPart(plan, { ...options, signal: controller.signal, key }));
  };
  try {
    await runPool(
      plans.filter((p) => !p.last),
      options.concurrency,
      controller,
      one,
    );
    await runPool(
      plans.filter((p) => p.last),
      1,
      controller,
      one,
    );
  } finally {
    options.signal.removeEventListener('abort', onAbort);
  }
  return { parts: results.map((r) => r.part), manifest: results.flatMap((r) => r.manifest) };
}
