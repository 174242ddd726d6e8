import type { Readable } from 'node:stream';

/** What a driver knows about a stored object. */
export interface ObjectInfo {
  /** key relative to the repository root, `/`-separated, e.g. `wal/000000010000000000000003` */
  key: string;
  /** stored (compressed) size in bytes */
  size: number;
  /** CRC32C of the stored bytes, base64 big-endian as GCS reports it */
  crc32c: string;
  /** user metadata set at creation (codec, raw size, raw crc32c, ...) */
  metadata: Record<string, string>;
  /** creation time */
  created: Date;
  /**
   * The version of the object under its key, a decimal string (GCS's object
   * generation; the file driver keeps its own). It changes whenever the
   * object is replaced or re-created and only ever grows for one key; compare
   * generations numerically (`BigInt`), never as strings.
   */
  generation: string;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ReadOptions extends CallOptions {
  /** first byte, inclusive (default 0) */
  start?: number;
  /** last byte, inclusive (default end of object) */
  end?: number;
}

export interface WriteOptions extends CallOptions {
  /** user metadata stored with the object; must be known before the upload starts */
  metadata?: Record<string, string>;
  /** content type for drivers that keep one (gs://) */
  contentType?: string;
  /**
   * Absent or `'0'`: create-only; an existing object makes the write throw
   * `AlreadyExistsError`. A generation: replace the object only if its live
   * generation is exactly this one, else throw `PreconditionFailedError`
   * (also when there is no object at all). Only the catalogue is ever replaced.
   */
  ifGenerationMatch?: string;
}

export interface DeleteOptions extends CallOptions {
  /**
   * Delete only if the live object has this generation (so a prune removes
   * exactly what it validated); another generation throws
   * `PreconditionFailedError`; a missing object is still success.
   */
  ifGenerationMatch?: string;
}

export interface ListOptions extends CallOptions {
  /** only keys strictly greater than this */
  startAfter?: string;
}

/**
 * The repository: a flat key space of immutable objects.
 *
 * Contract every driver honours (checked by test/core/storage/contract.ts):
 * - `write` is create-only unless `ifGenerationMatch` names a generation: it
 *   never replaces an existing object; if the key exists it throws
 *   `AlreadyExistsError` and leaves the existing object alone. With a
 *   generation it replaces the object only if that generation is live, else
 *   throws `PreconditionFailedError` and leaves it alone; of concurrent
 *   replaces from one generation exactly one succeeds.
 *   An object becomes visible only complete: if the source stream fails or the
 *   signal aborts, nothing is left under the key (and a replaced object stays
 *   as it was).
 * - `stat`, `list` and `write` report the object's `generation`.
 * - `stat` returns `undefined` when the key does not exist; any other failure
 *   throws (`StorageError`/`AuthError`), never `undefined`.
 * - `read` throws `NotFoundError` only when the key does not exist.
 * - `list` yields objects whose key starts with `prefix`, in ascending key order.
 * - `delete` is idempotent: deleting a missing key succeeds. With
 *   `ifGenerationMatch` it deletes only that generation, else throws
 *   `PreconditionFailedError`.
 */
export interface Storage {
  /** the repository URL this driver serves, for messages */
  readonly url: string;
  stat(key: string, options?: CallOptions): Promise<ObjectInfo | undefined>;
  read(key: string, options?: ReadOptions): Promise<Readable>;
  write(key: string, source: Readable, options?: WriteOptions): Promise<ObjectInfo>;
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  delete(key: string, options?: DeleteOptions): Promise<void>;
}
