import { randomToken } from '../../random-token.ts';
import { createReadStream, createWriteStream, type BigIntStats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ChecksumMeter, crc32c, crc32cBase64 } from '../../checksum/crc32c.ts';
import { fsyncPath } from '../../fsync.ts';
import { AlreadyExistsError, GcwalError, NotFoundError, PreconditionFailedError, RepositoryMissingError, UsageError } from '../../errors.ts';
import { FILE_MODE, makeDirectories } from './dirs.ts';
import { isErrno, mapFsError } from './errors.ts';
import { acquireLock, inspectLock, settleJournal } from './lock.ts';
import { moveOrphanAside, ORPHAN_AGE_MS, sweepTemp } from './recovery.ts';
import { pendingSidecarName, readSidecar, settlePendingSidecar, writeSidecarDurably, type Sidecar } from './sidecar.ts';
import { normaliseGeneration } from '../generation.ts';
import type { CallOptions, DeleteOptions, ListOptions, ObjectInfo, ReadOptions, Storage, WriteOptions } from '../types.ts';

/** Private area inside the repository root: metadata sidecars and temp files. */
const PRIVATE_DIR = '.gcwal';

/** What is on disk for a key. */
interface OnDisk {
  st: BigIntStats;
  sidecar: Sidecar | undefined;
  /** the sidecar was written for this very data file (a replace is not half-way) */
  matches: boolean;
}

/** A temp file holding a complete, fsynced copy of a source stream. */
interface Received {
  size: number;
  crc32c: string;
  mtimeNs: bigint;
  ino: bigint;
}

/** How long a conditional call waits for a create or a replace of the same key to finish its second rename. */
const SETTLE_TRIES = 50;
const SETTLE_WAIT_MS = 20;

/**
 * `file:///absolute/path` repository. Each object is a plain file at
 * `<root>/<key>` (so `lzop -d` works on it by hand); its metadata lives in a
 * sidecar `<root>/.gcwal/meta/<key>.json`.
 *
 * Writes are durable and create-only: data goes to a temp file that is
 * fsynced, its sidecar to a pending name derived from the key and the temp
 * file's inode (sidecar.ts), fsynced with its directory; then the data
 * is `link(2)`ed to its final name (atomic, fails with EEXIST if another
 * writer got there first, so nothing is ever replaced), its directory
 * fsynced, and the sidecar renamed into place. A writer killed between the
 * link and the rename leaves data whose pending sidecar any later stat,
 * list or write of the key renames into place (roll forward). Data with no
 * sidecar at all (an older gcwal killed there, or a file copied in by hand)
 * is reported without metadata, which readers treat as an object they
 * cannot decode; a create of its key moves it to `.gcwal/orphaned/` once it
 * is ORPHAN_AGE_MS old (roll back). Temp files of writers that died are
 * removed after TEMP_SWEEP_AGE_MS (recovery.ts). Files are created 0600
 * and directories 0700 whatever the umask (dirs.ts).
 *
 * Generations: the sidecar records one, the data file's mtime in
 * nanoseconds when it was written (for a replace, at least the previous
 * generation + 1, so it only grows). An object whose sidecar predates
 * generations, or that has none, reports its data file's mtime in ns, which
 * is stable while the file is untouched and equals what a sidecar being
 * written for it will record.
 *
 * Conditional replace and delete (ifGenerationMatch) run under a per-key lock
 * file (see lock.ts): the new data is streamed to a temp file and
 * fsynced first, then under the lock the live generation is checked, the
 * sidecar written, and data then sidecar renamed into place; a crash between
 * the two renames is finished by whoever next finds the lock stale. Readers
 * never see a partial file: each rename swaps a whole file.
 */
export class FileStorage implements Storage {
  readonly url: string;
  readonly root: string;
  /** whether this instance has swept `.gcwal/tmp` (once, on its first write) */
  private swept = false;

  constructor(url: string) {
    if (!url.startsWith('file://')) throw new UsageError(`"${url}" is not a file:// URL`, 'use file:///absolute/path');
    this.url = url.replace(/\/+$/, '');
    this.root = fileURLToPath(this.url.startsWith('file:///') ? this.url : `file://${url.slice(7)}`);
  }

  /**
   * Create the root directory (and missing parents) with mode 0700, for
   * gcwal repo-create; resolves true when it did not exist. Writes never
   * create the root: a missing one (an unmounted volume, a typo) is
   * RepositoryMissingError, not a fresh archive.
   */
  async createRoot(): Promise<boolean> {
    if (await exists(this.root)) return false;
    try {
      // Level by level, each fsynced in its parent, up from the file system's root: a missing parent is created durably too.
      await makeDirectories(path.parse(this.root).root, this.root);
    } catch (err) {
      throw mapFsError(err, `create directory ${this.root}`);
    }
    return true;
  }

  /** RepositoryMissingError when `err` is an ENOENT because the root directory itself is missing. */
  private async missingRoot(err: unknown): Promise<GcwalError | undefined> {
    if (!isErrno(err, 'ENOENT') || (await exists(this.root).catch(() => true))) return undefined;
    return new RepositoryMissingError(this.url, `does not exist (no directory ${this.root})`, { cause: err });
  }

  /** The root's entries other than gcwal's private area and a mount point's lost+found; undefined when the root does not exist. */
  async rootEntries(): Promise<string[] | undefined> {
    try {
      return (await fs.readdir(this.root)).filter((name) => name !== PRIVATE_DIR && name !== 'lost+found');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw mapFsError(err, `list ${this.root}`);
    }
  }

  private dataPath(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  private metaPath(key: string): string {
    checkKey(key);
    return path.join(this.root, PRIVATE_DIR, 'meta', ...key.split('/')) + '.json';
  }

  private tmpDir(): string {
    return path.join(this.root, PRIVATE_DIR, 'tmp');
  }

  private pendingPath(key: string, ino: bigint): string {
    return path.join(this.tmpDir(), pendingSidecarName(key, ino));
  }

  private lockPath(key: string): string {
    checkKey(key);
    return path.join(this.root, PRIVATE_DIR, 'locks', ...key.split('/')) + '.lock';
  }

  async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    for (let attempt = 0; ; attempt++) {
      options.signal?.throwIfAborted();
      const disk = await this.onDisk(key);
      if (!disk) return undefined;
      // No sidecar, or one written for another data file: a replace or
      // delete may be between its two steps (wait for it, or finish it if its
      // holder died). Without a lock it is a crashed create or a copied
      // repository: report what is there.
      if (!disk.matches && attempt < SETTLE_TRIES) {
        // A reader that cannot settle a dead holder's work (read-only access)
        // still reports what it sees.
        const lock = await inspectLock(this.lockPath(key)).catch(() => 'none' as const);
        if (lock !== 'none') {
          if (lock === 'live') await sleep(SETTLE_WAIT_MS, undefined, { signal: options.signal });
          continue;
        }
      }
      return this.infoOf(key, disk, options.signal);
    }
  }

  private async onDisk(key: string): Promise<OnDisk | undefined> {
    const dataPath = this.dataPath(key);
    let st: BigIntStats;
    try {
      st = await fs.stat(dataPath, { bigint: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw mapFsError(err, `stat ${key}`);
    }
    if (!st.isFile()) return undefined;
    let sidecar = await this.readSidecar(key);
    if (!describes(sidecar, st)) {
      // Data without its sidecar: its writer died (or is about to do it)
      // between linking the data and renaming the sidecar. Finish the rename.
      sidecar = (await settlePendingSidecar(this.pendingPath(key, st.ino), this.metaPath(key), st.size)) ?? (await this.readSidecar(key));
    }
    return { st, sidecar, matches: describes(sidecar, st) };
  }

  private async infoOf(key: string, disk: OnDisk, signal?: AbortSignal): Promise<ObjectInfo> {
    const { st, sidecar } = disk;
    const generation = sidecar?.generation ?? st.mtimeNs.toString();
    if (sidecar) return { key, size: sidecar.size, crc32c: sidecar.crc32c, metadata: sidecar.metadata, created: new Date(sidecar.created), generation };
    // Data without sidecar: a crash between link and rename. Report what we can.
    const { size, checksum } = await checksumFile(this.dataPath(key), signal);
    return { key, size, crc32c: checksum, metadata: {}, created: new Date(Number(st.mtimeMs)), generation };
  }

  /**
   * The live generation, or undefined when there is no object; call under the
   * key's lock. A create that has linked its data but not yet renamed its
   * sidecar is finished by onDisk, so a replace never races its second rename.
   */
  private async liveGeneration(key: string): Promise<string | undefined> {
    const disk = await this.onDisk(key);
    if (!disk) return undefined;
    return disk.sidecar?.generation ?? disk.st.mtimeNs.toString();
  }

  private async readSidecar(key: string): Promise<Sidecar | undefined> {
    return readSidecar(this.metaPath(key), `read metadata of ${key}`);
  }

  /**
   * The data file's bytes. No roll forward here: the data under a key is
   * always whole (linked complete), and every reader that needs metadata
   * stats the key first, which finishes a dead writer's sidecar rename.
   */
  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    options.signal?.throwIfAborted();
    const dataPath = this.dataPath(key);
    let handle;
    try {
      handle = await fs.open(dataPath, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new NotFoundError(`object ${key} does not exist in ${this.url}`);
      throw mapFsError(err, `open ${key}`);
    }
    return handle.createReadStream({ start: options.start, end: options.end, signal: options.signal, highWaterMark: 256 * 1024, autoClose: true });
  }

  /**
   * Create-only (see Storage.write), or with `ifGenerationMatch` a
   * conditional replace under the key's lock.
   */
  async write(key: string, source: Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
    let expected: string | undefined;
    try {
      expected = normaliseGeneration(options.ifGenerationMatch);
    } catch (err) {
      source.destroy();
      throw err;
    }
    return expected === undefined || expected === '0' ? this.create(key, source, options) : this.replace(key, source, expected, options);
  }

  /**
   * Make the directories a write of `key` needs (0700, each new level's
   * parent fsynced) and, on this instance's first write, sweep temp files
   * that dead writers left; destroys `source` on failure.
   */
  private async prepare(key: string, source: Readable, withLock: boolean): Promise<void> {
    try {
      // Never the root itself: only repo-create makes it (see createRoot).
      const dirs = [this.tmpDir(), path.dirname(this.dataPath(key)), path.dirname(this.metaPath(key))];
      if (withLock) dirs.push(path.dirname(this.lockPath(key)));
      for (const dir of dirs) await makeDirectories(this.root, dir);
    } catch (err) {
      source.destroy();
      throw (await this.missingRoot(err)) ?? mapFsError(err, `create directories for ${key}`);
    }
    if (!this.swept) {
      this.swept = true;
      await sweepTemp(this.tmpDir(), Date.now(), (k) => this.onDisk(k)).catch(() => []);
    }
  }

  private tempDataPath(): string {
    return path.join(this.tmpDir(), `${process.pid}-${randomToken(6)}`);
  }

  /** Rename a pending sidecar onto the key's; a reader may have done so first, leaving this very sidecar there. */
  private async placeSidecar(key: string, pending: string, ino: bigint): Promise<void> {
    try {
      await fs.rename(pending, this.metaPath(key));
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || (await this.readSidecar(key))?.ino !== ino.toString()) throw err;
    }
  }

  /**
   * Throw AlreadyExistsError when `key` holds an object (finishing a dead
   * writer's sidecar rename first). Data with no sidecar at all, unwritten
   * for ORPHAN_AGE_MS, cannot be decoded by anyone: it is moved aside so
   * that this create can write the key (see moveOrphanAside).
   */
  private async clearForCreate(key: string): Promise<void> {
    const disk = await this.onDisk(key);
    if (!disk) return;
    if (disk.sidecar || Date.now() - Number(disk.st.mtimeMs) < ORPHAN_AGE_MS) throw new AlreadyExistsError(key);
    const orphanDir = path.join(this.root, PRIVATE_DIR, 'orphaned');
    await makeDirectories(this.root, orphanDir);
    await moveOrphanAside(this.dataPath(key), orphanDir, key, disk.st.ino);
  }

  /** Stream `source` into a new file at `tmpData` and fsync it. */
  private async receive(source: Readable, tmpData: string, signal?: AbortSignal): Promise<Received> {
    const meter = new ChecksumMeter();
    const out = createWriteStream(tmpData, { flags: 'wx', mode: FILE_MODE, highWaterMark: 1024 * 1024 });
    await pipeline(source, meter, out, { signal });
    await fsyncPath(tmpData);
    const st = await fs.stat(tmpData, { bigint: true });
    return { size: meter.bytes, crc32c: meter.base64, mtimeNs: st.mtimeNs, ino: st.ino };
  }

  private async create(key: string, source: Readable, options: WriteOptions): Promise<ObjectInfo> {
    const dataPath = this.dataPath(key);
    await this.prepare(key, source, false);
    try {
      await this.clearForCreate(key);
    } catch (err) {
      source.destroy();
      throw err instanceof GcwalError ? err : mapFsError(err, `write ${key}`);
    }
    const tmpData = this.tempDataPath();
    let tmpMeta: string | undefined;
    let linked = false;
    try {
      const received = await this.receive(source, tmpData, options.signal);
      // The generation is the data file's mtime, which link(2) keeps: a stat
      // between the link and the sidecar rename reports the same generation.
      const info = infoFor(key, received, received.mtimeNs, options);
      tmpMeta = this.pendingPath(key, received.ino);
      await writeSidecarDurably(tmpMeta, sidecarFor(key, info, received.ino));
      try {
        await fs.link(tmpData, dataPath);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) throw new AlreadyExistsError(key);
        throw err;
      }
      linked = true;
      await fsyncPath(path.dirname(dataPath));
      // Not fsynced after the rename: until it is on disk the pending sidecar is, and the next access renames it again.
      await this.placeSidecar(key, tmpMeta, received.ino);
      return info;
    } catch (err) {
      throw err instanceof GcwalError ? err : mapFsError(err, `write ${key}`);
    } finally {
      await fs.rm(tmpData, { force: true }).catch(() => {});
      // Once the data is linked, its pending sidecar is what describes it until renamed: it stays.
      if (tmpMeta && !linked) await fs.rm(tmpMeta, { force: true }).catch(() => {});
    }
  }

  private async replace(key: string, source: Readable, expected: string, options: WriteOptions): Promise<ObjectInfo> {
    const dataPath = this.dataPath(key);
    const metaPath = this.metaPath(key);
    await this.prepare(key, source, true);
    const tmpData = this.tempDataPath();
    let tmpMeta: string | undefined;
    // Once the data is renamed into place the sidecar must follow even if
    // this call fails: then the temp sidecar and, if need be, the lock stay
    // for settleJournal.
    let committed = false;
    let settled = true;
    try {
      // The slow part, streaming the body, happens before the lock is taken.
      const received = await this.receive(source, tmpData, options.signal);
      tmpMeta = this.pendingPath(key, received.ino);
      const release = await acquireLock(this.lockPath(key), { tmpData, tmpMeta, metaPath }, { signal: options.signal });
      try {
        const live = await this.liveGeneration(key);
        if (live !== expected) throw new PreconditionFailedError(key, expected, live ?? '0');
        const floor = BigInt(live) + 1n;
        const info = infoFor(key, received, received.mtimeNs > floor ? received.mtimeNs : floor, options);
        await writeSidecarDurably(tmpMeta, sidecarFor(key, info, received.ino));
        options.signal?.throwIfAborted();
        await fs.rename(tmpData, dataPath);
        committed = true;
        await fsyncPath(path.dirname(dataPath));
        await this.placeSidecar(key, tmpMeta, received.ino);
        return info;
      } catch (err) {
        if (committed)
          settled = await settleJournal({ tmpData, tmpMeta, metaPath }).then(
            () => true,
            () => false,
          );
        throw err;
      } finally {
        // An unsettled replace keeps its lock: a later caller finds it stale and finishes the job.
        if (settled) await release();
      }
    } catch (err) {
      throw err instanceof GcwalError ? err : mapFsError(err, `replace ${key}`);
    } finally {
      if (settled) {
        await fs.rm(tmpData, { force: true }).catch(() => {});
        if (tmpMeta) await fs.rm(tmpMeta, { force: true }).catch(() => {});
      }
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    for await (const key of this.walk(dirKey, options.signal)) {
      if (!key.startsWith(prefix)) continue;
      if (options.startAfter !== undefined && key <= options.startAfter) continue;
      const info = await this.stat(key, options);
      if (info) yield info;
    }
  }

  /** Keys under a directory key (`''` or ending in `/`), in ascending key order. */
  private async *walk(dirKey: string, signal?: AbortSignal): AsyncIterable<string> {
    signal?.throwIfAborted();
    const dir = path.join(this.root, ...dirKey.split('/').filter(Boolean));
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw mapFsError(err, `list ${dirKey || '/'}`);
    }
    // Sorting directories as "name/" makes the depth-first walk yield keys in
    // plain lexicographic order, the order GCS lists in.
    const sorted = entries
      .filter((e) => !(dirKey === '' && e.name === PRIVATE_DIR))
      .map((e) => ({ e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const { e } of sorted) {
      if (e.isDirectory()) yield* this.walk(`${dirKey}${e.name}/`, signal);
      else if (e.isFile()) yield `${dirKey}${e.name}`;
    }
  }

  /**
   * Idempotent delete (see Storage.delete), under the key's lock so a
   * conditional delete checks and removes one and the same generation.
   */
  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const expected = normaliseGeneration(options.ifGenerationMatch);
    const lockPath = this.lockPath(key);
    try {
      try {
        await makeDirectories(this.root, path.dirname(lockPath));
      } catch (err) {
        // No repository root: nothing to delete.
        if (isErrno(err, 'ENOENT') && !(await exists(this.root))) return;
        throw err;
      }
      const release = await acquireLock(lockPath, {}, { signal: options.signal });
      try {
        if (expected !== undefined) {
          const live = await this.liveGeneration(key);
          if (live === undefined) return;
          if (live !== expected) throw new PreconditionFailedError(key, expected, live);
        }
        // Sidecar first: a create racing this delete then either still finds
        // the data (AlreadyExists) or lands whole, sidecar and all, after it.
        for (const p of [this.metaPath(key), this.dataPath(key)]) {
          try {
            await fs.unlink(p);
          } catch (err) {
            if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
          }
        }
      } finally {
        await release();
      }
    } catch (err) {
      throw mapFsError(err, `delete ${key}`);
    }
  }
}

/** ObjectInfo of a received object about to be committed with `generation`. */
function infoFor(key: string, received: Received, generation: bigint, options: WriteOptions): ObjectInfo {
  return {
    key,
    size: received.size,
    crc32c: received.crc32c,
    metadata: { ...(options.metadata ?? {}) },
    created: new Date(),
    generation: generation.toString(),
  };
}

/** The sidecar recording `info` for the data file with inode `ino`. */
function sidecarFor(key: string, info: ObjectInfo, ino: bigint): Sidecar {
  return {
    size: info.size,
    crc32c: info.crc32c,
    metadata: info.metadata,
    created: info.created.toISOString(),
    generation: info.generation,
    ino: ino.toString(),
    key,
  };
}

/** Whether `sidecar` was written for the data file `st` (a sidecar from before inodes were recorded is taken as such). */
function describes(sidecar: Sidecar | undefined, st: BigIntStats): sidecar is Sidecar {
  return sidecar !== undefined && (sidecar.ino === undefined || sidecar.ino === st.ino.toString());
}

function checkKey(key: string): void {
  const parts = key.split('/');
  if (key === '' || key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || parts[0] === PRIVATE_DIR) {
    throw new UsageError(`invalid object key "${key}"`, 'keys are relative, /-separated, without empty, . or .. segments');
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw mapFsError(err, `stat ${p}`);
  }
}

async function checksumFile(p: string, signal?: AbortSignal): Promise<{ size: number; checksum: string }> {
  let size = 0;
  let crc = 0;
  for await (const chunk of createReadStream(p, { signal })) {
    size += (chunk as Buffer).length;
    crc = crc32c(chunk as Buffer, crc);
  }
  return { size, checksum: crc32cBase64(crc) };
}
