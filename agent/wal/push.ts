import * as path from 'node:path';
import { PassThrough, pipeline, Readable } from 'node:stream';
import { encodeLzopInMemory, type LzopEncodeStats, type LzopHelper } from '../../core/codec/lzo/parallel.ts';
import { ChecksumMeter, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { getCodec } from '../../core/codec/index.ts';
import type { CodecName } from '../../core/codec/types.ts';
import { AlreadyExistsError, ConflictError, CorruptObjectError, InvalidInputError, StorageError } from '../../core/errors.ts';
import { Meta, walObjectKey } from '../../core/layout.ts';
import { handled } from '../../core/handled.ts';
import { readRepositoryIdentity, requireRepositoryFor, requireRepositoryIdentity, type RepositoryIdentity } from '../../core/repository.ts';
import { recordedRawChecksum } from '../../core/storage/decode.ts';
import { holdsSameContent, type Checksum } from '../../core/storage/same-content.ts';
import type { ObjectInfo, Storage } from '../../core/storage/types.ts';
import { checkSegmentHeader, parseLongPageHeader } from '../../core/wal/header.ts';
import { classifyWalFileName, type WalFileName } from '../../core/wal/name.ts';
import { readWalSource, type WalSource } from './source.ts';
import { retry } from '../../core/retry.ts';

export interface PushOptions {
  codec: CodecName;
  level: number | undefined;
  signal?: AbortSignal;
  /** retries of the whole push after a transient storage failure (the driver retries requests too) */
  retries?: number;
  /** called before each retry, for logging */
  onRetry?: (attempt: number, err: StorageError) => void;
  /** files up to this size are read once into memory; larger ones are read twice (default WHOLE_FILE_LIMIT, 64 MiB) */
  wholeFileLimit?: number;
  /**
   * Shared by the pushes of one run into one repository (wal-push's segment
   * and those it pushes ahead): records the cluster whose identity the
   * repository was found to hold, so later segments of that same cluster do
   * not read gcwal.json again. Sound because gcwal.json is create-only and
   * never replaced or deleted by gcwal; a segment of any other cluster, or
   * of another segment size, is still checked against the repository.
   */
  identity?: IdentityMemo;
  /**
   * A started helper thread for the lzo codec (core/codec/lzo/parallel.ts):
   * a file read whole is then compressed by this thread and the helper
   * together. Same bytes either way; without it, this thread alone.
   */
  lzopHelper?: LzopHelper;
}

/** See PushOptions.identity; start with `{}`. */
export interface IdentityMemo {
  confirmed?: { systemIdentifier: string; walSegmentSize: number };
}

export interface PushResult {
  /** archived now, or found already archived with identical content */
  status: 'archived' | 'already-archived';
  key: string;
  rawSize: number;
  /** CRC32C of the raw file, base64 (GCS style) */
  rawCrc32c: string;
  storedSize: number;
  /** lzop blocks the helper thread compressed (see PushOptions.lzopHelper); 0 without one */
  helperBlocks?: number;
  /** a segment's page magic when it is newer than this gcwal knows (archived all the same: warn) */
  newerWalMagic?: number;
}

/**
 * Archive one file from pg_wal. Checks a segment's long page header against
 * its name and the repository's cluster (RepositoryMissingError when the
 * repository has no gcwal.json: a push never creates one), then sends file → compress →
 * storage (create-only). Idempotent: identical content already archived is
 * success; different content is ConflictError and nothing is overwritten.
 *
 * The raw size and CRC32C travel as object metadata, which must be known
 * when an upload starts, so the file is read before uploading: once into
 * memory when it is at most `wholeFileLimit` bytes (every default-sized
 * segment), else in a checksum pass and again in an upload pass that fails
 * the write (nothing finalised) if the file changed in between. While it is
 * read, the header is checked and the repository asked for its identity and
 * for the object, so the file's I/O and the repository's round trips
 * overlap. Transient storage failures retry the whole push, without reading
 * the file again when it is in memory.
 */
export async function pushWalFile(storage: Storage, filePath: string, options: PushOptions): Promise<PushResult> {
  const name = path.basename(filePath);
  const kind = classifyWalFileName(name);
  if (!kind) {
    throw new InvalidInputError(`${name} is not a WAL file name`, "pass a segment, .partial, .history or .backup file from pg_wal, as archive_command's %p");
  }
  // The repository's identity is asked for while the file is opened: the
  // GET (and the token and connection before it) need nothing from the file.
  // Only the answer waits for the header, and a local failure is still
  // reported first. Not when this run has already confirmed it.
  const identityRead = options.identity?.confirmed ? undefined : handled(readRepositoryIdentity(storage, { signal: options.signal }));
  const source = await readWalSource(filePath, { wholeFileLimit: options.wholeFileLimit, signal: options.signal, shared: parallelLzo(options) });
  try {
    const cluster = checkLocalFile(name, kind, source);
    const result = await retry((attempt) => pushOnce(storage, name, cluster, source, options, attempt === 0 ? identityRead : undefined), {
      retries: options.retries ?? 0,
      baseMs: 250,
      maxMs: 8000,
      transient: (err) => err instanceof StorageError && err.transient,
      onRetry: (retry, err) => options.onRetry?.(retry, err as StorageError),
      signal: options.signal,
    });
    return cluster?.newerWalMagic === undefined ? result : { ...result, newerWalMagic: cluster.newerWalMagic };
  } finally {
    source.release();
  }
}

/** A segment's cluster, from its header; undefined for history and .backup files, which carry none. */
type SegmentCluster = { systemIdentifier: string; walSegmentSize: number; newerWalMagic?: number } | undefined;

/** The checks that need only the file: header against name, size against header. */
function checkLocalFile(name: string, kind: WalFileName, source: WalSource): SegmentCluster {
  if (kind.kind !== 'segment' && kind.kind !== 'partial') return undefined;
  const header = parseLongPageHeader(source.head);
  const checked = checkSegmentHeader(header, kind.kind === 'segment' ? name : kind.segmentName);
  if (source.size !== checked.segmentSize) {
    throw new InvalidInputError(
      `${name} is ${source.size} bytes but its header says segments are ${checked.segmentSize} bytes`,
      'the file is truncated or not a WAL segment; do not archive it',
    );
  }
  return { systemIdentifier: checked.systemIdentifier, walSegmentSize: checked.segmentSize, ...(checked.newerWalMagic ? { newerWalMagic: header.magic } : {}) };
}

/** One attempt; `identityRead` is a read of the repository's identity already under way (first attempt only). */
async function pushOnce(
  storage: Storage,
  name: string,
  cluster: SegmentCluster,
  source: WalSource,
  options: PushOptions,
  identityRead?: Promise<RepositoryIdentity | undefined>,
): Promise<PushResult> {
  const key = walObjectKey(name);
  const signal = options.signal;
  // The compressed bytes start flowing at once, on the pieces already read,
  // and run ahead into a buffer while the checksum and the repository's
  // answer come in: the object's metadata must be known before the write
  // starts, its bytes need not wait for that. Making the compressor loads
  // the codec's native library (a few ms of the main thread), also while
  // libuv's threads read the file. An invalid level is reported only when
  // the compressor is needed, as before.
  const stats: LzopEncodeStats = { helperBlocks: 0 };
  const early = (() => {
    try {
      return { content: compressedContent(source, options, stats) };
    } catch (err) {
      return { error: err };
    }
  })();
  const content = early.content;
  // The size and CRC32C of the bytes this attempt stores, for comparing with an object already there.
  const storedMeter = new ChecksumMeter();
  const compressed = content ? pipeline(content, storedMeter, new PassThrough({ highWaterMark: runAheadBytes(source.size) }), () => {}) : undefined;
  // Both run while the file is still being read; a local failure is
  // reported before a repository one, as it would be one after the other.
  const [read, remote] = await Promise.allSettled([
    source.checksum(),
    (async () => {
      let systemIdentifier: string | undefined;
      if (cluster) {
        const memo = options.identity;
        if (memo?.confirmed?.systemIdentifier !== cluster.systemIdentifier || memo.confirmed.walSegmentSize !== cluster.walSegmentSize) {
          await requireRepositoryFor(storage, cluster, { signal, read: identityRead });
          if (memo) memo.confirmed = { systemIdentifier: cluster.systemIdentifier, walSegmentSize: cluster.walSegmentSize };
        }
        systemIdentifier = cluster.systemIdentifier;
      } else {
        // History and .backup files carry no system identifier; they still may
        // only go into a repository that repo-create made.
        systemIdentifier = (await requireRepositoryIdentity(storage, { signal, read: identityRead })).systemIdentifier;
      }
      // No stat of the key first: the write below is create-only, and an
      // existing object (a re-push after a crash) comes back as
      // AlreadyExistsError, compared then. One round trip fewer per segment.
      return { systemIdentifier };
    })(),
  ]);
  if (read.status === 'rejected' || remote.status === 'rejected') {
    content?.destroy();
    compressed?.destroy();
  }
  if (read.status === 'rejected') throw read.reason;
  if (remote.status === 'rejected') throw remote.reason;
  const local = { size: source.size, crc: read.value };
  const { systemIdentifier } = remote.value;
  if (!compressed || !content) throw early.error;

  const metadata: Record<string, string> = {
    [Meta.codec]: options.codec,
    [Meta.rawSize]: String(local.size),
    [Meta.rawCrc32c]: crc32cBase64(local.crc),
  };
  if (systemIdentifier !== undefined) metadata[Meta.systemId] = systemIdentifier;
  try {
    const info = await storage.write(key, compressed, { metadata, contentType: 'application/octet-stream', signal });
    return { status: 'archived', key, rawSize: local.size, rawCrc32c: metadata[Meta.rawCrc32c]!, storedSize: info.size, helperBlocks: stats.helperBlocks };
  } catch (err) {
    content.destroy();
    if (!(err instanceof AlreadyExistsError)) throw err;
    // Lost a race with another push of the same name, or a retried create
    // whose first attempt did land: decide by content.
    const now = await storage.stat(key, { signal });
    if (!now) throw err;
    const stored = storedMeter.writableFinished ? { size: storedMeter.bytes, crc32c: storedMeter.base64 } : undefined;
    return compareExisting(storage, now, local, name, stored, signal);
  }
}

/** Whether this push compresses with the lzo helper thread (only lzo's single level; others go the usual way). */
function parallelLzo(options: PushOptions): boolean {
  return options.lzopHelper !== undefined && options.codec === 'lzo' && options.level === undefined;
}

/**
 * The compressed bytes of one upload attempt: for lzo with a helper and a
 * file in memory, from the parallel encoder; otherwise through the codec's
 * compressor (the callback form of pipeline returns it and destroys it with
 * a read error or a "changed while archived" failure). Throws what making the
 * compressor throws (an invalid level).
 */
function compressedContent(source: WalSource, options: PushOptions, stats: LzopEncodeStats): Readable {
  if (parallelLzo(options) && source.inMemory) {
    return Readable.from(encodeLzopInMemory(source.inMemory, options.lzopHelper, stats), { objectMode: false, signal: options.signal });
  }
  const compressor = getCodec(options.codec).compressor(options.level);
  return pipeline(source.open(options.signal), compressor, () => {});
}

/**
 * How much compressed output may wait for the write to start: the whole
 * object for a file read into memory (compressed, at most its size plus
 * lzop's few bytes per block), else 16 MiB, so a large file's memory stays bounded.
 */
function runAheadBytes(size: number): number {
  return Math.max(64 * 1024, Math.min(size + (size >> 4), 16 * 1024 * 1024));
}

/**
 * The push found `existing` under its key: already archived when it holds
 * this file's content, else ConflictError. The metadata the writer recorded
 * must name this file's raw size and CRC32C (else it is another file, or
 * cannot be restored as this one), and the content must be this file's as
 * the storage computed it, never as the metadata claims (holdsSameContent:
 * the stored bytes' CRC32C against those of this attempt's `stored` bytes,
 * else the object decoded): a damaged object written with this file's
 * metadata is not archived.
 */
async function compareExisting(
  storage: Storage,
  existing: ObjectInfo,
  local: { size: number; crc: number },
  name: string,
  stored: Checksum | undefined,
  signal: AbortSignal | undefined,
): Promise<PushResult> {
  const want = { size: local.size, crc32c: crc32cBase64(local.crc) };
  let have: { size: number; crc32c: string };
  try {
    have = recordedRawChecksum(existing);
  } catch (err) {
    if (!(err instanceof CorruptObjectError)) throw err;
    // Metadata lost (a crash between data and metadata): the object cannot be
    // restored anyway, but replacing it is a human decision.
    throw new ConflictError(
      `${name} is already archived but its metadata is missing`,
      `check ${storage.url}/${existing.key} by hand; remove it if it is damaged, then archive again`,
    );
  }
  if (have.size !== want.size || have.crc32c !== want.crc32c) {
    throw new ConflictError(
      `${name} is already archived with different content (${have.size} bytes, crc32c ${have.crc32c}; local ${want.size} bytes, crc32c ${want.crc32c})`,
      'two clusters may be archiving into one repository, or the archive is damaged; investigate before archiving further',
    );
  }
  if (!(await holdsSameContent(storage, existing, { raw: want, stored }, { signal }))) {
    throw new ConflictError(
      `${name} is already archived, but the stored object (${existing.size} bytes, crc32c ${existing.crc32c}) does not hold the content its metadata records`,
      `the archived copy is damaged: check ${storage.url}/${existing.key} by hand, remove it, then archive again while ${name} is still in pg_wal`,
    );
  }
  return { status: 'already-archived', key: existing.key, rawSize: local.size, rawCrc32c: want.crc32c, storedSize: existing.size };
}
