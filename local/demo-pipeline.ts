/**
 * The pipeline's part of `npm run demo` (local/demo.ts): starting the stack
 * with the pipeline or, when gcloud's Pub/Sub emulator cannot run, without
 * it; waiting until the pipeline has validated everything archived; and
 * damaging an archived segment as a bucket admin (or bit rot) could. Kept
 * apart so that demo.ts reads as the story.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertMessage } from '../core/alerts/types.ts';
import type { Catalogue } from '../core/catalogue/types.ts';
import { UsageError } from '../core/errors.ts';
import { listObjects, readObject, writeObject, type ObjectResource } from './testkit/gcs-admin.ts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from './stack.ts';
import { walEntry } from '../core/catalogue/runs.ts';

/** A stack for the demo; `skipped` says why it runs without the pipeline. */
export interface DemoStack {
  stack: LocalStack;
  skipped?: string;
}

/**
 * Start the local stack with the pipeline, gcloud found on `path`. When
 * gcloud cannot be run at all (the pipeline's UsageError "cannot run gcloud
 * ..."), start it without the pipeline and return the reason in `skipped`;
 * every other failure (a missing functions bundle, an emulator that does not
 * come up) is thrown, so a broken pipeline never passes for a missing one.
 */
export async function startDemoStack(options: LocalStackOptions, path: string): Promise<DemoStack> {
  try {
    return { stack: await startLocalStack({ ...options, pipeline: { toolEnv: { PATH: path } } }) };
  } catch (err) {
    if (!(err instanceof UsageError && err.message.startsWith('cannot run gcloud'))) throw err;
    return { stack: await startLocalStack(options), skipped: `${err.message} (${err.hint.replace(/, or start the stack without.*$/, '')})` };
  }
}

/** What the pipeline validated. */
export interface Validated {
  /** WAL segments (24-hex names) */
  segments: number;
  /** other files under wal/: backup labels, history files */
  otherWal: number;
  parts: number;
  backups: number;
  /** from the call until the catalogue showed every object valid */
  ms: number;
}

/** Objects validated one by one: WAL files, backup parts, backup metadata (a manifest is checked with its backup). */
const CHECKED = /^(wal\/|backups\/[^/]+\/(part_\d+\.tar|backup\.json)$)/;

/** The catalogue's entry for the live object `key` (relative to the repository), if it describes this generation. */
function entryOf(catalogue: Catalogue, key: string, generation: string): { state: string; problem?: string } | undefined {
  const entry = key.startsWith('wal/')
    ? walEntry(catalogue, key.slice(4))
    : /\/part_\d+\.tar$/.test(key)
      ? catalogue.parts[key]
      : catalogue.backups[key.split('/')[1]];
  // A folded segment's own generation is not kept, only that it is at most its run's.
  const folded = entry !== undefined && 'folded' in entry;
  return entry && (folded ? BigInt(entry.generation) >= BigInt(generation) : BigInt(entry.generation) === BigInt(generation)) ? entry : undefined;
}

/**
 * Poll the catalogue until every WAL file, backup part and backup under
 * `prefix` (the repository's key prefix, ending in `/`) is valid there, as
 * the generation now in the bucket. Throws when one is found corrupt, or when
 * some are still not valid after `timeoutMs`, naming them.
 */
export async function waitUntilValidated(stack: LocalStack, prefix: string, timeoutMs: number): Promise<Validated> {
  const pipeline = stack.pipeline;
  if (!pipeline) throw new Error('the stack runs without the pipeline');
  const started = Date.now();
  for (;;) {
    const objects = (await listObjects(stack, prefix))
      .map((o) => ({ key: o.name.slice(prefix.length), generation: o.generation }))
      .filter((o) => CHECKED.test(o.key));
    const { catalogue } = await pipeline.readCatalogue();
    const states = objects.map((o) => ({ key: o.key, entry: entryOf(catalogue, o.key, o.generation) }));
    const corrupt = states.find((s) => s.entry?.state === 'corrupt');
    if (corrupt) throw new Error(`the pipeline found ${corrupt.key} corrupt: ${corrupt.entry!.problem ?? 'no reason given'}`);
    const waiting = states.filter((s) => s.entry?.state !== 'valid').map((s) => s.key);
    if (objects.length > 0 && waiting.length === 0) {
      const wal = objects.filter((o) => o.key.startsWith('wal/')).map((o) => o.key.slice(4));
      const segments = wal.filter((n) => /^[0-9A-F]{24}$/.test(n)).length;
      return {
        segments,
        otherWal: wal.length - segments,
        parts: objects.filter((o) => o.key.endsWith('.tar')).length,
        backups: objects.filter((o) => o.key.endsWith('/backup.json')).length,
        ms: Date.now() - started,
      };
    }
    if (Date.now() - started > timeoutMs) {
      const shown =
        waiting.length > 0 ? `${waiting.length} not valid yet: ${waiting.slice(0, 5).join(', ')}${waiting.length > 5 ? ', ...' : ''}` : 'nothing was archived';
      throw new Error(`the pipeline did not validate the archive within ${timeoutMs / 1000} s (${shown}); its functions' logs are in stack.pipeline.logs()`);
    }
    await sleep(250);
  }
}

/**
 * The first WAL segment the newest backup in the catalogue needs (its start
 * segment), or undefined when the catalogue has no backup.
 */
export async function backupStartSegment(stack: LocalStack): Promise<string | undefined> {
  if (!stack.pipeline) throw new Error('the stack runs without the pipeline');
  const backups = Object.values((await stack.pipeline.readCatalogue()).catalogue.backups);
  return backups.sort((a, b) => a.stopLsn.localeCompare(b.stopLsn)).at(-1)?.startWalSegment;
}

/**
 * Replace the object `name` with its own bytes, 16 of them in the middle
 * inverted, keeping its content type and metadata (so its recorded checksums
 * now disagree with its content), as an admin; resolves with the new object.
 */
export async function flipBytes(stack: LocalStack, name: string): Promise<ObjectResource> {
  const { body, resource } = await readObject(stack, name);
  const damaged = Buffer.from(body);
  const middle = damaged.length >> 1;
  for (let i = middle; i < Math.min(middle + 16, damaged.length); i++) damaged[i] ^= 0xff;
  return writeObject(stack, name, damaged, { contentType: resource.contentType, metadata: resource.metadata });
}

/**
 * The open corrupt-object alert for `key` (relative to the repository) at
 * `generation`, read from the alerts topic by the pipeline's Pub/Sub
 * subscriber; rejects after `timeoutMs` with what did arrive.
 */
export async function corruptionAlert(stack: LocalStack, key: string, generation: string, timeoutMs: number): Promise<AlertMessage> {
  const pipeline = stack.pipeline;
  if (!pipeline) throw new Error('the stack runs without the pipeline');
  return pipeline.nextAlert(
    (a) => a.status === 'open' && a.kind === 'corrupt-object' && a.details.key === key && a.details.generation === generation,
    timeoutMs,
  );
}
