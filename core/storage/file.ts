import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { ChecksumMeter, crc32c, crc32cBase64 } from '../checksum/crc32c.ts';
import { fsyncPath } from '../fsync.ts';
import { AlreadyExistsError, GcwalError, NotFoundError, StorageError, UsageError } from '../errors.ts';
import type { CallOptions, ListOptions, ObjectInfo, ReadOptions, Storage, WriteOptions } from './types.ts';

/** Private area inside the repository root: metadata sidecars and temp files. */
const PRIVATE_DIR = '.gcwal';

interface Sidecar {
  size: number;
  crc32c: string;
  metadata: Record<string, string>;
  created: string;
}

/**
 * `file:///absolute/path` repository. Each object is a plain file at
 * `<root>/<key>` (so `lzop -d` works on it by hand); its metadata lives in a
 * sidecar `<root>/.gcwal/meta/<key>.json`.
 *
 * Writes are durable and create-only: data goes to a temp file that is
 * fsynced, then `link(2)`ed to its final name (atomic, fails with EEXIST if
 * another writer got there first, so nothing is ever replaced), then the
 * sidecar is renamed into place and both directories are fsynced. A crash
 * between the link and the sidecar rename leaves an object without metadata;
 * `stat` then recomputes size and CRC32C from the data and reports no
 * metadata, which readers treat as an object they cannot decode.
 */
export class FileStorage implements Storage {
  readonly url: string;
  readonly root: string;

  constructor(url: string) {
    if (!url.startsWith('file://')) throw new UsageError(`"${url}" is not a file:// URL`, 'use file:///absolute/path');
    this.url = url.replace(/\/+$/, '');
    this.root = fileURLToPath(this.url.startsWith('file:///') ? this.url : `file://${url.slice(7)}`);
  }

  private dataPath(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  private metaPath(key: string): string {
    return path.join(this.root, PRIVATE_DIR, 'meta', ...key.split('/')) + '.json';
  }

  async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    options.signal?.throwIfAborted();
    const dataPath = this.dataPath(key);
    let st;
    try {
      st = await fs.stat(dataPath);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw mapFsError(err, `stat ${key}`);
    }
    if (!st.isFile()) return undefined;
    const sidecar = await this.readSidecar(key);
    if (sidecar) return { key, size: sidecar.size, crc32c: sidecar.crc32c, metadata: sidecar.metadata, created: new Date(sidecar.created) };
    // Data without sidecar: a crash between link and rename. Report what we can.
    const { size, checksum } = await checksumFile(dataPath, options.signal);
    return { key, size, crc32c: checksum, metadata: {}, created: st.mtime };
  }

  private async readSidecar(key: string): Promise<Sidecar | undefined> {
    try {
      return JSON.parse(await fs.readFile(this.metaPath(key), 'utf8')) as Sidecar;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      if (err instanceof SyntaxError) return undefined;
      throw mapFsError(err, `read metadata of ${key}`);
    }
  }

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

  async write(key: string, source: Readable, options: WriteOptions = {}): Promise<ObjectInfo> {
    const dataPath = this.dataPath(key);
    const tmpDir = path.join(this.root, PRIVATE_DIR, 'tmp');
    const metaPath = this.metaPath(key);
    try {
      await fs.mkdir(tmpDir, { recursive: true });
      await fs.mkdir(path.dirname(dataPath), { recursive: true });
      await fs.mkdir(path.dirname(metaPath), { recursive: true });
    } catch (err) {
      source.destroy();
      throw mapFsError(err, `create directories for ${key}`);
    }
    if (await exists(dataPath)) {
      source.destroy();
      throw new AlreadyExistsError(key);
    }
    const tmpName = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const tmpData = path.join(tmpDir, tmpName);
    const tmpMeta = `${tmpData}.json`;
    const meter = new ChecksumMeter();
    try {
      const out = createWriteStream(tmpData, { flags: 'wx', highWaterMark: 1024 * 1024 });
      await pipeline(source, meter, out, { signal: options.signal });
      await fsyncPath(tmpData);
      const info: ObjectInfo = { key, size: meter.bytes, crc32c: meter.base64, metadata: { ...(options.metadata ?? {}) }, created: new Date() };
      const sidecar: Sidecar = { size: info.size, crc32c: info.crc32c, metadata: info.metadata, created: info.created.toISOString() };
      await fs.writeFile(tmpMeta, JSON.stringify(sidecar));
      await fsyncPath(tmpMeta);
      try {
        await fs.link(tmpData, dataPath);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) throw new AlreadyExistsError(key);
        throw err;
      }
      await fs.rename(tmpMeta, metaPath);
      await fsyncPath(path.dirname(dataPath));
      await fsyncPath(path.dirname(metaPath));
      return info;
    } catch (err) {
      throw err instanceof GcwalError ? err : mapFsError(err, `write ${key}`);
    } finally {
      await fs.rm(tmpData, { force: true }).catch(() => {});
      await fs.rm(tmpMeta, { force: true }).catch(() => {});
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

  async delete(key: string, options: CallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    for (const p of [this.dataPath(key), this.metaPath(key)]) {
      try {
        await fs.unlink(p);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw mapFsError(err, `delete ${key}`);
      }
    }
  }
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

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Map a filesystem error to StorageError with a hint; never NotFound (callers decide that). */
function mapFsError(err: unknown, what: string): GcwalError {
  if (err instanceof GcwalError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? 'unknown';
  const message = `${what} failed: ${code}`;
  if (code === 'EACCES' || code === 'EPERM') return new StorageError(message, false, 'check that the user running gcwal can read and write the repository directory', { cause: err });
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StorageError(message, false, 'the repository file system is full; free space and retry', { cause: err });
  if (code === 'ABORT_ERR') return new StorageError(`${what} was cancelled`, false, 'the operation was interrupted', { cause: err });
  return new StorageError(message, code === 'EIO' || code === 'EAGAIN' || code === 'EBUSY', 'check the repository file system and retry', { cause: err });
}
