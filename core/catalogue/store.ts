import { retry } from '../retry.ts';
import { AlreadyExistsError, CorruptObjectError, NotFoundError, PreconditionFailedError, StorageError } from '../errors.ts';
import { CATALOGUE_KEY, Meta, WAL_PREFIX } from '../layout.ts';
import { readSmallObject, writeSmallObject } from '../storage/objects.ts';
import type { Storage } from '../storage/types.ts';
import { foldValidSegments } from './apply.ts';
import { CATALOGUE_LIMIT, type CatalogueParts, decodeCatalogueObject, decodeSettled, encodeCatalogueObject, encodeSettled } from './encoding.ts';
import { segmentId, withSegmentTombstone } from './runs.ts';
import { hasNewlySettled, mergeCatalogue, SettledNeeded, splitCatalogue } from './settled.ts';
import { emptyCatalogue, type Catalogue, type CatalogueWalRun, type SegmentTombstones } from './types.ts';

/**
 * Reading and updating the catalogue object (`CATALOGUE_KEY`, gzipped JSON
 * in two members, see encoding.ts; docs/catalogue.md). Updates are optimistic: read with its generation, change, write
 * back only if that generation is still live, and start over when someone
 * else wrote first. Several function instances may update at once.
 */

/** A change to the catalogue: pure and idempotent (it may run several times; see updateCatalogue). */
export type CatalogueChange = (catalogue: Catalogue) => Catalogue;

/** The catalogue as read, with the generation to make a conditional write against. */
export interface CatalogueSnapshot {
  catalogue: Catalogue;
  /** generation of the object read; `'0'` when there is none yet */
  generation: string;
}

/**
 * The outcome of a committed update. Its catalogues are in the form the
 * change worked on: when the object keeps settled backups apart (settled.ts),
 * `backups` and `parts` hold only the others and `settled` summarises them.
 */
export interface CatalogueUpdate extends CatalogueSnapshot {
  /** the catalogue the change was applied to (the live one at the time of the write) */
  previous: Catalogue;
  /** whether a new catalogue was written; false when the change altered nothing but `updated` */
  written: boolean;
}

export interface ReadCatalogueOptions {
  signal?: AbortSignal;
  /** clock for the `updated` time of an empty catalogue (default: the system clock) */
  now?: () => Date;
}

export interface UpdateCatalogueOptions extends ReadCatalogueOptions {
  /** attempts before giving up when others keep writing first (default 25) */
  maxAttempts?: number;
}

const DEFAULT_ATTEMPTS = 25;
/** Between lost races: from ~0.1 s up to 3 s, jittered so the losers spread out. */
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 3000;

/**
 * Read the catalogue. A missing object is an empty catalogue with generation
 * `'0'`; an object that is not a catalogue throws CorruptObjectError;
 * storage and auth failures throw as they are (never "empty").
 *
 * The generation is taken before the body is read: if the object is replaced
 * in between, the body is newer than the generation, and a conditional write
 * against it fails and is retried, so no update is lost either way.
 */
export async function readCatalogue(storage: Storage, options: ReadCatalogueOptions = {}): Promise<CatalogueSnapshot> {
  const read = await readRaw(storage, options);
  if (!read) return { catalogue: emptyCatalogue((options.now ?? (() => new Date()))()), generation: '0' };
  return { catalogue: wholeCatalogue(read, where(storage)), generation: read.generation };
}

/** The whole catalogue (every backup, no `settled`) from the stored bytes; CorruptObjectError when they are not one. */
export function parseCatalogueObject(body: Buffer, location: string): Catalogue {
  return wholeCatalogue(decodeCatalogueObject(body, location), location);
}

function wholeCatalogue(read: CatalogueParts, location: string): Catalogue {
  const main = parseCatalogue(read.text, location).catalogue;
  return mergeCatalogue(main, read.settled ? decodeSettled(read.settled, location) : undefined);
}

async function readRaw(storage: Storage, options: ReadCatalogueOptions): Promise<(CatalogueParts & { generation: string }) | undefined> {
  return retry(
    async () => {
      const info = await storage.stat(CATALOGUE_KEY, { signal: options.signal });
      if (!info) return undefined;
      const body = await readSmallObject(storage, CATALOGUE_KEY, { signal: options.signal, limit: CATALOGUE_LIMIT });
      return { ...decodeCatalogueObject(body, where(storage)), generation: info.generation };
    },
    // Deleted between stat and read: look again at once (a few times, then say so).
    { retries: 2, baseMs: 0, maxMs: 0, transient: (err) => err instanceof NotFoundError },
  );
}

/** The bytes a whole catalogue is stored as (settled backups in their own member, see encoding.ts). */
export function catalogueBytes(catalogue: Catalogue): Buffer {
  const { main, settled } = splitCatalogue(catalogue);
  return encodeCatalogueObject(JSON.stringify(main), settled ? encodeSettled(JSON.stringify(settled)) : undefined);
}

/** Stands for `updated` while serialising once (see updateCatalogue): no real time looks like it. */
const UPDATED_PLACEHOLDER = '\u0000gcwal-updated\u0000';
const PLACEHOLDER_JSON = JSON.stringify(UPDATED_PLACEHOLDER);

function where(storage: Storage): string {
  return `${storage.url}/${CATALOGUE_KEY}`;
}

const MAPS = ['wal', 'parts', 'backups', 'tombstones', 'alerts'] as const;
const LISTS = ['walRuns', 'segmentTombstones'] as const;

function damaged(location: string, what: string): CorruptObjectError {
  return new CorruptObjectError(`catalogue ${location} ${what}`, 'the catalogue was damaged; move it aside and let the pipeline rebuild it from a listing');
}

/**
 * Parse catalogue JSON; CorruptObjectError unless it is a format-2 catalogue
 * or a format-1 one, which is converted (`migrated`): its valid segments
 * folded into runs and its segments' tombstones into ranges (see
 * migrateCatalogue).
 */
function parseCatalogue(text: string, location: string): { catalogue: Catalogue; migrated: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CorruptObjectError(
      `catalogue ${location} is not valid json: ${(err as Error).message.split('\n')[0]}`,
      'the catalogue was damaged; move it aside and let the pipeline rebuild it from a listing',
      { cause: err },
    );
  }
  const record = value as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw damaged(location, 'is not a json object');
  if (record.format !== 1 && record.format !== 2) {
    throw new CorruptObjectError(
      `catalogue ${location} has format ${JSON.stringify(record.format)}, expected 2`,
      'a newer gcwal may have written it; upgrade gcwal, or move the catalogue aside to rebuild it',
    );
  }
  for (const name of MAPS) {
    const map = record[name];
    if (map === undefined) record[name] = {};
    else if (typeof map !== 'object' || map === null || Array.isArray(map)) throw damaged(location, `has an invalid "${name}" field`);
  }
  for (const name of LISTS) {
    const list = record[name];
    if (list === undefined) record[name] = [];
    else if (!Array.isArray(list)) throw damaged(location, `has an invalid "${name}" field`);
  }
  if (record.format === 1) return { catalogue: migrateCatalogue(record as unknown as Catalogue), migrated: true };
  return { catalogue: record as unknown as Catalogue, migrated: false };
}

/**
 * A format-1 catalogue (one entry per WAL file, one tombstone per deleted
 * object) in format 2: valid segments folded into runs and deleted
 * segments' tombstones into ranges, once the segment size is known (until
 * then it stays as it is, and folds as events arrive).
 */
export function migrateCatalogue(old: Catalogue): Catalogue {
  const catalogue: Catalogue = { ...old, format: 2, walRuns: old.walRuns ?? [], segmentTombstones: old.segmentTombstones ?? [] };
  const segSize = catalogue.walSegmentSize;
  if (segSize === undefined) return catalogue;
  const folded = foldValidSegments(Object.values(catalogue.wal), catalogue.walRuns, segSize);
  const wal = { ...catalogue.wal };
  for (const name of folded.names) delete wal[name];
  let ranges = catalogue.segmentTombstones;
  const tombstones = { ...catalogue.tombstones };
  for (const [key, tombstone] of Object.entries(catalogue.tombstones).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const id = key.startsWith(WAL_PREFIX) ? segmentId(key.slice(WAL_PREFIX.length), segSize) : undefined;
    if (!id) continue;
    ranges = withSegmentTombstone(ranges, id.timeline, id.segNo, tombstone.generation, tombstone.deleted, segSize) as SegmentTombstones[];
    delete tombstones[key];
  }
  return { ...catalogue, wal, walRuns: folded.runs as CatalogueWalRun[], tombstones, segmentTombstones: ranges };
}

/**
 * Read, change, and write the catalogue back only if it is still the
 * generation read (create-only when there was none); when another writer got
 * there first (PreconditionFailedError, AlreadyExistsError), wait a jittered
 * backoff and start over, up to `maxAttempts` times, then throw a transient
 * StorageError. A transient StorageError on the write (Cloud Storage's 429
 * when the object is written more than about once a second, a 503) is
 * retried the same way. A change that alters nothing (same JSON, `updated` aside)
 * writes nothing and returns the live generation. `updated` is set to `now()`.
 *
 * `change` gets its own copy, so it may modify it or return a new object. It
 * must be idempotent: it runs once per attempt, and after an ambiguous
 * failure (a write that landed but whose answer was lost reads as a lost
 * race) it runs again on a catalogue that already has its effect.
 * CorruptObjectError, storage and auth errors, aborts and anything `change`
 * throws are not retried.
 */
export async function updateCatalogue(storage: Storage, change: CatalogueChange, options: UpdateCatalogueOptions = {}): Promise<CatalogueUpdate> {
  const now = options.now ?? (() => new Date());
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_ATTEMPTS);
  const attempt = async (): Promise<CatalogueUpdate> => {
    options.signal?.throwIfAborted();
    const read = await readRaw(storage, options);
    const generation = read?.generation ?? '0';
    const location = where(storage);
    const parsed = read ? parseCatalogue(read.text, location) : { catalogue: emptyCatalogue(now()), migrated: false };
    let previous = parsed.catalogue;
    // A second parse rather than a clone: the change may modify its copy freely.
    const working = () => (read ? parseCatalogue(read.text, location).catalogue : emptyCatalogue(now()));
    // The settled backups stay bytes (read.settled) unless the change needs them (SettledNeeded) or one more settles.
    let settledText: string | undefined;
    const loadSettled = () => {
      if (!read?.settled) return undefined;
      const settled = decodeSettled(read.settled, location);
      settledText ??= JSON.stringify(settled);
      return settled;
    };
    let changed: Catalogue;
    try {
      changed = change(working());
    } catch (err) {
      if (!(err instanceof SettledNeeded) || !previous.settled) throw err;
      previous = mergeCatalogue(previous, loadSettled());
      changed = change(mergeCatalogue(working(), loadSettled()));
    }
    // Worked on the main member only: the settled member is kept as it is, unless a backup settled since.
    const summary = previous.settled;
    let main: Catalogue = summary ? { ...changed, settled: summary } : changed;
    let settledBytes = read?.settled;
    if (!summary || hasNewlySettled(changed)) {
      const split = splitCatalogue(summary ? mergeCatalogue(changed, loadSettled()) : changed);
      main = split.main;
      const text = split.settled ? JSON.stringify(split.settled) : undefined;
      if (read?.settled && settledText === undefined) loadSettled();
      if (text !== settledText) settledBytes = text === undefined ? undefined : encodeSettled(text);
    }
    // A catalogue read in the old format is written back converted, even when nothing else changed.
    // Compared with the text read rather than previous serialised again: one serialisation fewer per update
    // (a stored text that is not JSON.stringify's own, e.g. with fields parseCatalogue filled in, is rewritten once).
    // One serialisation serves both the comparison and the write: `updated` (a
    // top-level string, written nowhere else) is a placeholder filled in either way.
    const template = JSON.stringify({ ...main, updated: UPDATED_PLACEHOLDER });
    const withUpdated = (time: string) => template.replace(PLACEHOLDER_JSON, () => JSON.stringify(time));
    const unchanged = withUpdated(previous.updated) === (read ? read.text : JSON.stringify(previous)) && settledBytes === read?.settled;
    if (!parsed.migrated && unchanged) {
      return { catalogue: main, generation, previous, written: false };
    }
    const next: Catalogue = { ...main, updated: now().toISOString() };
    try {
      const info = await writeSmallObject(storage, CATALOGUE_KEY, encodeCatalogueObject(withUpdated(next.updated), settledBytes), {
        signal: options.signal,
        ifGenerationMatch: generation,
        metadata: { [Meta.codec]: 'gzip' },
        contentType: 'application/gzip',
      });
      return { catalogue: next, generation: info.generation, previous, written: true };
    } catch (err) {
      // A transient failure (Cloud Storage's 429 for more than about one
      // write a second to the object, a 503) is retried like a lost race.
      const transient = err instanceof StorageError && err.transient;
      if (!(err instanceof PreconditionFailedError) && !(err instanceof AlreadyExistsError) && !transient) throw err;
      throw new LostRace(err);
    }
  };
  try {
    return await retry(attempt, {
      retries: maxAttempts - 1,
      baseMs: RETRY_BASE_MS,
      maxMs: RETRY_MAX_MS,
      transient: (err) => err instanceof LostRace,
      signal: options.signal,
    });
  } catch (err) {
    if (!(err instanceof LostRace)) throw err;
    options.signal?.throwIfAborted();
    throw new StorageError(`catalogue ${where(storage)} kept changing: gave up after ${maxAttempts} attempts`, true, 'too many writers at once; retry later', {
      cause: err.conflict,
    });
  }
}

/** The write of an update met another writer's (or a transient failure): read again and start over. */
class LostRace extends Error {
  constructor(readonly conflict: unknown) {
    super('the catalogue changed under the update');
  }
}

export interface CatalogueBatcherOptions extends UpdateCatalogueOptions {
  /** how long a first change waits for others to join its write (default 100 ms) */
  windowMs?: number;
}

interface Pending {
  change: CatalogueChange;
  resolve: (update: CatalogueUpdate) => void;
  reject: (err: unknown) => void;
  failed?: { error: unknown };
}

/** Thrown inside a batch's combined change when one member throws, to rerun the batch without it. */
class MemberFailed extends Error {}

/**
 * Coalesces the catalogue changes of one process into few writes (GCS allows
 * about one write per second to one object name). A change submitted while
 * nothing is pending waits `windowMs` for others; changes submitted during
 * that window or while a write is in flight are applied together, in
 * submission order, by one updateCatalogue. Create one per process (or per
 * function instance) and pass it where it is needed; it holds no global state.
 */
export class CatalogueBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly windowMs: number;

  constructor(
    private readonly storage: Storage,
    private readonly options: CatalogueBatcherOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 100;
  }

  /**
   * Queue `change` (same contract as for updateCatalogue). Resolves with the
   * update that committed it (shared by its whole batch), or rejects with
   * what failed that batch, or with what `change` itself threw (the rest of
   * its batch is then committed without it).
   */
  submit(change: CatalogueChange): Promise<CatalogueUpdate> {
    return new Promise((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      if (!this.running && !this.timer) this.timer = setTimeout(() => this.start(), this.windowMs);
    });
  }

  /** Commit what is queued now, without waiting out the window; resolves when everything submitted so far has settled. */
  async flush(): Promise<void> {
    while (this.running || this.queue.length > 0) {
      if (!this.running) this.start();
      await this.running;
    }
  }

  private start(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      // Changes that arrived during the last write have waited long enough.
      if (this.queue.length > 0) this.start();
    });
  }

  private async drain(): Promise<void> {
    const batch = this.queue.splice(0);
    let live = batch;
    while (live.length > 0) {
      const members = live;
      try {
        const update = await updateCatalogue(this.storage, (catalogue) => combine(members, catalogue), this.options);
        for (const member of members) member.resolve(update);
        return;
      } catch (err) {
        if (!(err instanceof MemberFailed)) {
          for (const member of members) member.reject(err);
          return;
        }
        for (const member of members) if (member.failed) member.reject(member.failed.error);
        live = members.filter((member) => !member.failed);
      }
    }
  }
}

/** Apply every member in order; a member that throws is marked and the whole attempt abandoned. */
function combine(members: Pending[], catalogue: Catalogue): Catalogue {
  let result = catalogue;
  for (const member of members) {
    try {
      result = member.change(result);
    } catch (error) {
      // Not the member's failure: the store runs the whole batch again with every backup (settled.ts).
      if (error instanceof SettledNeeded) throw error;
      member.failed = { error };
      throw new MemberFailed();
    }
  }
  return result;
}
