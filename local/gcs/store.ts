/**
 * Buckets and objects on disk, with an in-memory index of their metadata.
 *
 * Layout under the state directory:
 *   buckets/<bucket>/bucket.json            the bucket record
 *   buckets/<bucket>/meta/<sha256(name)>.json  one object record (names can be
 *                                           1024 bytes and contain anything)
 *   buckets/<bucket>/data/<generation>      the object's bytes
 *   tmp/                                    uploads in progress (emptied on start)
 *
 * A new generation's bytes get their own file, so replacing an object never
 * disturbs a download of the old generation that already opened its file.
 * Commit order is data rename → record rename → unlink old data: after a
 * crash an object is either the old or the new generation, and orphaned data
 * files are swept on the next start. Object bodies are never held in memory.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { KeyedLock } from './lock.ts';

/** One live object version: everything the JSON resource is built from. */
export interface ObjectRecord {
  bucket: string;
  name: string;
  /** decimal string, unique and increasing across the whole emulator */
  generation: string;
  metageneration: number;
  size: number;
  /** base64 of the big-endian CRC32C */
  crc32c: string;
  /** base64 of the MD5 digest; absent for composed objects */
  md5Hash?: string;
  contentType: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  customTime?: string;
  metadata?: Record<string, string>;
  /** RFC 3339 with milliseconds */
  timeCreated: string;
  updated: string;
  /** set when the bucket had a retention policy at creation */
  retentionExpirationTime?: string;
  componentCount?: number;
}

/** A bucket and the few properties the emulator implements. */
export interface BucketRecord {
  name: string;
  timeCreated: string;
  updated: string;
  location: string;
  metageneration: number;
  /** retention policy period in seconds; absent = no policy */
  retentionPeriod?: number;
  retentionEffectiveTime?: string;
}

interface BucketIndex {
  record: BucketRecord;
  objects: Map<string, ObjectRecord>;
  /** object names in ascending order, for listing */
  names: string[];
}

/** Metadata-file name for an object name (fixed length, filesystem-safe). */
function metaFileName(name: string): string {
  return `${createHash('sha256').update(name).digest('hex')}.json`;
}

/** Write JSON atomically: temp file in the same directory, then rename. */
async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(value));
  await fs.rename(tmp, file);
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === code;
}

/** Index of the first element of sorted `names` that is >= `key`. */
export function lowerBound(names: readonly string[], key: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The emulator's persistent state. Mutations of one object name must run
 * inside {@link Store.lock} for that name so that concurrent writers are
 * serialised (exactly one `ifGenerationMatch=0` create wins).
 */
export class Store {
  readonly dir: string;
  private readonly buckets = new Map<string, BucketIndex>();
  private readonly locks = new KeyedLock();
  private lastGeneration = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Open (creating if needed) the state in `dir`, load every record, sweep leftovers. */
  static async open(dir: string): Promise<Store> {
    const store = new Store(path.resolve(dir));
    await fs.rm(store.tmpDir, { recursive: true, force: true });
    await fs.mkdir(store.tmpDir, { recursive: true });
    await fs.mkdir(path.join(store.dir, 'buckets'), { recursive: true });
    await store.load();
    return store;
  }

  private get tmpDir(): string {
    return path.join(this.dir, 'tmp');
  }

  private bucketDir(bucket: string): string {
    return path.join(this.dir, 'buckets', bucket);
  }

  private async load(): Promise<void> {
    for (const entry of await fs.readdir(path.join(this.dir, 'buckets'), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = this.bucketDir(entry.name);
      let record: BucketRecord;
      try {
        record = JSON.parse(await fs.readFile(path.join(dir, 'bucket.json'), 'utf8')) as BucketRecord;
      } catch {
        continue;
      }
      const index: BucketIndex = { record, objects: new Map(), names: [] };
      const live = new Set<string>();
      for (const file of await fs.readdir(path.join(dir, 'meta')).catch(() => [] as string[])) {
        const full = path.join(dir, 'meta', file);
        if (!file.endsWith('.json')) {
          await fs.rm(full, { force: true });
          continue;
        }
        const object = JSON.parse(await fs.readFile(full, 'utf8')) as ObjectRecord;
        index.objects.set(object.name, object);
        live.add(object.generation);
        this.lastGeneration = Math.max(this.lastGeneration, Number(object.generation));
      }
      index.names = [...index.objects.keys()].sort();
      // Data files no record points at: a crash between the data and the record rename.
      for (const file of await fs.readdir(path.join(dir, 'data')).catch(() => [] as string[])) {
        if (!live.has(file)) await fs.rm(path.join(dir, 'data', file), { force: true });
      }
      this.buckets.set(record.name, index);
    }
  }

  /**
   * A new generation number: microseconds since the epoch like GCS, but
   * strictly greater than any generation handed out before (also across
   * restarts, as the loaded records set the floor).
   */
  nextGeneration(): string {
    this.lastGeneration = Math.max(this.lastGeneration + 1, Date.now() * 1000);
    return String(this.lastGeneration);
  }

  /** A fresh path in the state directory's tmp/ for an upload in progress. */
  tempPath(): string {
    return path.join(this.tmpDir, randomUUID());
  }

  /** The bucket's record, or undefined when there is no such bucket. */
  bucket(name: string): BucketRecord | undefined {
    return this.buckets.get(name)?.record;
  }

  /** Every bucket, by name. */
  listBuckets(): BucketRecord[] {
    return [...this.buckets.values()].map((b) => b.record).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Create the bucket, or return the existing one unchanged. */
  async createBucket(record: BucketRecord): Promise<{ record: BucketRecord; created: boolean }> {
    const existing = this.buckets.get(record.name);
    if (existing) return { record: existing.record, created: false };
    const dir = this.bucketDir(record.name);
    await fs.mkdir(path.join(dir, 'meta'), { recursive: true });
    await fs.mkdir(path.join(dir, 'data'), { recursive: true });
    await writeJsonAtomic(path.join(dir, 'bucket.json'), record);
    this.buckets.set(record.name, { record, objects: new Map(), names: [] });
    return { record, created: true };
  }

  /** Replace a bucket's record (e.g. a new retention policy). */
  async updateBucket(record: BucketRecord): Promise<void> {
    const index = this.buckets.get(record.name);
    if (!index) throw new Error(`bucket ${record.name} does not exist`);
    await writeJsonAtomic(path.join(this.bucketDir(record.name), 'bucket.json'), record);
    index.record = record;
  }

  /** Remove an empty bucket; false when it still holds objects. */
  async deleteBucket(name: string): Promise<boolean> {
    const index = this.buckets.get(name);
    if (!index) return true;
    if (index.objects.size > 0) return false;
    this.buckets.delete(name);
    await fs.rm(this.bucketDir(name), { recursive: true, force: true });
    return true;
  }

  /** The live version of bucket/name, or undefined when there is none. */
  get(bucket: string, name: string): ObjectRecord | undefined {
    return this.buckets.get(bucket)?.objects.get(name);
  }

  /** Object names of `bucket` in ascending order (live view; do not modify). */
  names(bucket: string): readonly string[] {
    return this.buckets.get(bucket)?.names ?? [];
  }

  private index(bucket: string): BucketIndex {
    const index = this.buckets.get(bucket);
    if (!index) throw new Error(`bucket ${bucket} does not exist`);
    return index;
  }

  /** Where the bytes of `record` live. */
  dataPath(record: Pick<ObjectRecord, 'bucket' | 'generation'>): string {
    return path.join(this.bucketDir(record.bucket), 'data', record.generation);
  }

  /**
   * Make `record` the live version, its bytes taken from `tempFile` (renamed,
   * not copied). Returns the version it replaced, if any. Call inside lock().
   */
  async commit(record: ObjectRecord, tempFile: string): Promise<ObjectRecord | undefined> {
    const index = this.index(record.bucket);
    const previous = index.objects.get(record.name);
    await fs.rename(tempFile, this.dataPath(record));
    await writeJsonAtomic(path.join(this.bucketDir(record.bucket), 'meta', metaFileName(record.name)), record);
    index.objects.set(record.name, record);
    if (!previous) index.names.splice(lowerBound(index.names, record.name), 0, record.name);
    else await fs.rm(this.dataPath(previous), { force: true });
    return previous;
  }

  /** Replace the metadata of the live version (same generation). Call inside lock(). */
  async updateObject(record: ObjectRecord): Promise<void> {
    const index = this.index(record.bucket);
    await writeJsonAtomic(path.join(this.bucketDir(record.bucket), 'meta', metaFileName(record.name)), record);
    index.objects.set(record.name, record);
  }

  /** Delete the live version of an object. Call inside lock(). */
  async remove(record: ObjectRecord): Promise<void> {
    const index = this.index(record.bucket);
    await fs.rm(path.join(this.bucketDir(record.bucket), 'meta', metaFileName(record.name)), { force: true });
    index.objects.delete(record.name);
    const at = lowerBound(index.names, record.name);
    if (index.names[at] === record.name) index.names.splice(at, 1);
    await fs.rm(this.dataPath(record), { force: true });
  }

  /**
   * Open the bytes of the live version of bucket/name for reading, together
   * with the record they belong to. A concurrent replacement can unlink the
   * file between the lookup and the open; then the lookup is repeated.
   * Undefined when the object does not exist.
   */
  async openData(bucket: string, name: string): Promise<{ record: ObjectRecord; fd: fs.FileHandle } | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = this.get(bucket, name);
      if (!record) return undefined;
      try {
        return { record, fd: await fs.open(this.dataPath(record), 'r') };
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    throw new Error(`object ${bucket}/${name} keeps changing; cannot open it`);
  }

  /** A read stream over an opened data file (closes the handle when done). */
  static stream(fd: fs.FileHandle, start: number, end: number): ReadStream {
    return createReadStream('', { fd, start, end, autoClose: true, highWaterMark: 256 * 1024 });
  }

  /**
   * Run `fn` with exclusive access to the object `bucket/name` within this
   * process; calls for the same name run one after another in call order.
   */
  lock<T>(bucket: string, name: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(`${bucket}\u0000${name}`, fn);
  }
}
