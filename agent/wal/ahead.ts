/**
 * Pushing ahead: archive_command starts one process per WAL segment, and
 * starting Node and loading gcwal costs more than pgBackRest's whole push.
 * When PostgreSQL falls behind, segments wait in pg_wal with a `.ready` file
 * in archive_status; wal-push then archives the next few of them in the same
 * process and leaves a marker for each (marker.ts), so that PostgreSQL's
 * calls for them return without reading, compressing or contacting the
 * repository. WAL-G's wal-push does the same with its background uploader.
 *
 * archive_command runs in the data directory with `%p` = `pg_wal/<name>`, so
 * the directory of the pushed file is pg_wal; when it has no archive_status
 * (a file pushed by hand from elsewhere) nothing is pushed ahead.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { classifyWalFileName } from '../../core/wal/name.ts';
import { fileIdentity, pruneMarkers, sameFile, writeMarker } from './marker.ts';
import type { PushResult } from './push.ts';

/** PostgreSQL's status directory beside the segments. */
const ARCHIVE_STATUS = 'archive_status';

/**
 * Segments archived ahead per wal-push at most. The run's fixed cost (Node,
 * the bundle, the Cloud Storage client, the first connection: most of a
 * gs:// run) is shared by 1 + AHEAD_LIMIT segments; 8 rather than 4 cut the
 * drain of a backlog to gs:// per segment (docs/performance.md), while one
 * run still ends within about a second or two.
 */
export const AHEAD_LIMIT = 8;

/** Ahead pushes in flight at once: overlaps one's I/O with another's compression while bounding memory. */
export const AHEAD_CONCURRENCY = 2;

/**
 * The oldest `limit` segments of `walDir` that PostgreSQL has marked ready
 * for archiving, leaving out `current`, in the order the archiver takes them
 * (ascending name within a timeline), plus every ready name (for pruning).
 * Only full segment names; .partial, .history and .backup files are left to
 * PostgreSQL. An unreadable or missing archive_status gives nothing.
 */
export async function readySegments(walDir: string, current: string, limit: number): Promise<{ next: string[]; ready: Set<string> }> {
  let entries: string[];
  try {
    entries = await fs.readdir(path.join(walDir, ARCHIVE_STATUS));
  } catch {
    return { next: [], ready: new Set() };
  }
  const ready = new Set(entries.filter((e) => e.endsWith('.ready')).map((e) => e.slice(0, -'.ready'.length)));
  const next = [...ready]
    .filter((name) => name !== current && classifyWalFileName(name)?.kind === 'segment')
    .sort()
    .slice(0, limit);
  return { next, ready };
}

export interface AheadOptions {
  /** the repository URL the markers vouch for */
  repo: string;
  /** archive one file (pushWalFile bound to the storage and options) */
  push: (filePath: string) => Promise<PushResult>;
  limit?: number;
  concurrency?: number;
  signal?: AbortSignal;
  /** called for each segment that could not be pushed ahead; it stays for PostgreSQL to push */
  onError?: (name: string, err: unknown) => void;
}

/**
 * Archive up to `limit` ready segments of `walDir` other than `current`, and
 * mark each one that is durably archived and did not change while it was
 * read. Never throws: a segment that fails is reported to `onError` and left
 * for PostgreSQL's own call. Resolves with the names marked.
 */
export async function pushAhead(walDir: string, current: string, options: AheadOptions): Promise<string[]> {
  const { next, ready } = await readySegments(walDir, current, options.limit ?? AHEAD_LIMIT);
  if (ready.size === 0) return [];
  await pruneMarkers(walDir, ready);
  const marked: string[] = [];
  const queue = [...next];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined && !options.signal?.aborted; name = queue.shift()) {
      try {
        if (await pushOne(walDir, name, options)) marked.push(name);
      } catch (err) {
        options.onError?.(name, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? AHEAD_CONCURRENCY, queue.length) }, worker));
  return marked.sort();
}

/**
 * Archive the ready segment `name` of `walDir` and mark it, only when the
 * push made it durable and its file did not change while it was read.
 * Resolves with whether it was marked; throws what the push throws. The
 * background archiver (archiver.ts) pushes through this too.
 */
export async function pushOne(walDir: string, name: string, options: Pick<AheadOptions, 'repo' | 'push'>): Promise<boolean> {
  const filePath = path.join(walDir, name);
  const before = await fileIdentity(filePath);
  if (!before) return false; // archived and removed since the listing
  const result = await options.push(filePath);
  const after = await fileIdentity(filePath);
  if (!after || !sameFile(before, after)) return false;
  await writeMarker(walDir, { format: 1, repo: options.repo, name, key: result.key, rawSize: result.rawSize, rawCrc32c: result.rawCrc32c, file: before });
  return true;
}
