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
}

export interface ListOptions extends CallOptions {
  /** only keys strictly greater than this */
  startAfter?: string;
}

/**
 * The repository: a flat key space of immutable objects.
 *
 * Contract every driver honours (checked by test/core/storage/contract.ts):
 * - `write` is create-only: it never replaces an existing object; if the key
 *   exists it throws `AlreadyExistsError` and leaves the existing object alone.
 *   An object becomes visible only complete: if the source stream fails or the
 *   signal aborts, nothing is left under the key.
 * - `stat` returns `undefined` when the key does not exist; any other failure
 *   throws (`StorageError`/`AuthError`), never `undefined`.
 * - `read` throws `NotFoundError` only when the key does not exist.
 * - `list` yields objects whose key starts with `prefix`, in ascending key order.
 * - `delete` is idempotent: deleting a missing key succeeds.
 */
export interface Storage {
  /** the repository URL this driver serves, for messages */
  readonly url: string;
  stat(key: string, options?: CallOptions): Promise<ObjectInfo | undefined>;
  read(key: string, options?: ReadOptions): Promise<Readable>;
  write(key: string, source: Readable, options?: WriteOptions): Promise<ObjectInfo>;
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  delete(key: string, options?: CallOptions): Promise<void>;
}
