/**
 * Reading a file from pg_wal for wal-push: its size and first bytes at once,
 * its CRC32C as soon as it has been read, and its contents for the upload.
 *
 * The read starts in the background when the source is opened, so that the
 * caller can check the header, load the codec and ask the repository about
 * the segment while the file is still coming in. A file of up to
 * `wholeFileLimit` bytes (64 MiB; the default segment is 16 MiB, PostgreSQL
 * allows 1 MiB to 1 GiB) is read once into one buffer that serves the
 * checksum and the upload; a larger one is scanned once for its checksum and
 * streamed again for the upload, so memory stays bounded whatever
 * --wal-segsize the cluster uses.
 */
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { crc32c } from '../../core/checksum/crc32c.ts';
import type { InMemoryData } from '../../core/codec/lzo/parallel.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { handled } from '../../core/handled.ts';

/** Largest file read into memory whole: 64 MiB, four times the default segment size. */
export const WHOLE_FILE_LIMIT = 64 * 1024 * 1024;

/** Bytes kept from the start of the file for the header check (the long page header is 40). */
export const HEAD_BYTES = 64;

/**
 * read() size. Single I/O calls over 1 MiB are several times slower than the
 * same bytes in 1 MiB calls, and 1 MiB reads in flight at once beat the same
 * reads one after another (docs/performance.md).
 */
const READ_CHUNK = 1024 * 1024;
/**
 * Reads queued at once: a whole 16 MiB segment. libuv's four threads work
 * through them on their own, where a lane of one read at a time waits for
 * this thread (starting up, compressing, handshaking) between its reads:
 * the checksum of a segment comes sooner in wal-push to gs:// than with four
 * lanes (docs/performance.md).
 */
const READS_IN_FLIGHT = 16;

/** Bytes handed to the compressor between turns of the event loop: one lzop block. */
const YIELD_EVERY = 256 * 1024;

/** What wal-push knows about the local file, and how to get its contents. */
export interface WalSource {
  /** size when opened (fstat) */
  size: number;
  /** the first HEAD_BYTES bytes (fewer for a shorter file) */
  head: Buffer;
  /**
   * CRC32C of the whole file, unsigned, once it has been read (or scanned).
   * Rejects with InvalidInputError when the file's size changed while it was
   * read, or with the file system's error when a read fails. The same promise
   * every call.
   */
  checksum(): Promise<number>;
  /**
   * A fresh stream of the contents for one upload attempt; call once per
   * attempt, after `checksum()` resolved. A streamed (large) file fails the
   * stream with InvalidInputError if its bytes differ from the scan's, so a
   * changed file never completes an upload.
   */
  open(signal?: AbortSignal): Readable;
  /** stop a read still running in the background (after a failure); idempotent */
  release(): void;
  /**
   * For a file read whole into memory: the buffer and when its bytes are in
   * (undefined for a large, streamed file). `until`/`done` reject as
   * `checksum()` does when the read fails or the file changed.
   */
  inMemory?: InMemoryData;
}

/**
 * Open `filePath` (a regular file), read its first bytes and start reading
 * the rest in the background. Throws InvalidInputError when the file is
 * missing, not a regular file or cannot be opened.
 */
export async function readWalSource(filePath: string, options: { wholeFileLimit?: number; signal?: AbortSignal; shared?: boolean } = {}): Promise<WalSource> {
  const limit = options.wholeFileLimit ?? WHOLE_FILE_LIMIT;
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(filePath, 'r');
  } catch (err) {
    throw unreadable(filePath, err);
  }
  let size: number;
  let head: Buffer;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new InvalidInputError(`${filePath} is not a regular file`, "pass the path of a WAL file, as archive_command's %p");
    size = st.size;
    head = Buffer.allocUnsafe(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    head = head.subarray(0, bytesRead);
  } catch (err) {
    await handle.close().catch(() => {});
    throw err;
  }

  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  if (size > limit) {
    await handle.close().catch(() => {});
    const scanned = handled(scanLarge(filePath, size, signal));
    return {
      size,
      head,
      checksum: () => scanned,
      // The callback form returns the last stream and destroys it with any
      // earlier stage's error, so the consumer sees a read failure or a change.
      open: (openSignal) =>
        pipeline(createReadStream(filePath, { highWaterMark: READ_CHUNK, signal: openSignal }), expectSameContent(size, scanned, filePath), () => {}),
      release: () => stop.abort(),
    };
  }
  const read = readWhole(handle, size, filePath, signal, options.shared ?? false);
  handled(read.done.finally(() => handle.close().catch(() => {})));
  // fast-crc32c is a native addon that takes a few milliseconds to load: load
  // it now, while the reads run on libuv's threads, not after them.
  crc32c(Buffer.alloc(0));
  const crc = handled(checksumPieces(read));
  return {
    size,
    head,
    checksum: () => crc,
    // Each 1 MiB piece as soon as it is in (and in order), so compression
    // starts on the first megabyte while the rest is still being read.
    open: () => Readable.from(pieces(read), { objectMode: false }),
    release: () => stop.abort(),
    inMemory: {
      data: read.data,
      until: async (end) => {
        await Promise.all(read.pieces.slice(0, Math.ceil(end / READ_CHUNK)));
      },
      done: read.done,
    },
  };
}

/** A file being read into one buffer; piece `i` (READ_CHUNK bytes from i × READ_CHUNK) is there once `pieces[i]` resolves. */
interface WholeRead {
  data: Buffer;
  pieces: Promise<void>[];
  /** every piece read and the file found to end where fstat said; rejects if it did not */
  done: Promise<void>;
}

/**
 * Read `size` bytes with READS_IN_FLIGHT lanes of READ_CHUNK reads (see
 * READ_CHUNK for why). Every promise is marked handled: a piece nobody waits
 * for any more must not end the process as an unhandled rejection.
 */
function readWhole(handle: fs.FileHandle, size: number, filePath: string, signal: AbortSignal, shared: boolean): WholeRead {
  // Shared memory lets a worker thread read the data without a copy (see core/codec/lzo/parallel.ts).
  const data = shared ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafe(size);
  const count = Math.ceil(size / READ_CHUNK);
  const settle: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  const pieces = Array.from({ length: count }, () => handled(new Promise<void>((resolve, reject) => settle.push({ resolve, reject }))));
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < count && failure === undefined) {
      const index = next++;
      try {
        signal.throwIfAborted();
        const offset = index * READ_CHUNK;
        const length = Math.min(READ_CHUNK, size - offset);
        const { bytesRead } = await handle.read(data, offset, length, offset);
        if (bytesRead < length) throw changed(filePath);
        settle[index]!.resolve();
      } catch (err) {
        failure ??= err;
      }
    }
  };
  const done = handled(
    (async () => {
      await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, count) }, lane));
      if (failure === undefined) {
        signal.throwIfAborted();
        // One more byte tells a file that grew after fstat from one that ended there.
        const { bytesRead: extra } = await handle.read(Buffer.allocUnsafe(1), 0, 1, size);
        if (extra !== 0) failure = changed(filePath);
      }
    })()
      .catch((err: unknown) => {
        failure ??= err;
      })
      .then(() => {
        if (failure === undefined) return;
        // Pieces never read (or read after a failure) fail with it; rejecting an already resolved promise is a no-op.
        for (const s of settle) s.reject(failure);
        throw failure;
      }),
  );
  return { data, pieces, done };
}

/** CRC32C of the file, piece by piece as they come in; rejects as `done` does. */
async function checksumPieces(read: WholeRead): Promise<number> {
  let crc = 0;
  for (let i = 0; i < read.pieces.length; i++) {
    await read.pieces[i];
    crc = crc32c(read.data.subarray(i * READ_CHUNK, (i + 1) * READ_CHUNK), crc);
  }
  await read.done;
  return crc;
}

/** The pieces in order as they are read; fails (so no upload completes) if the file turns out to have changed. */
async function* pieces(read: WholeRead): AsyncGenerator<Buffer> {
  for (let i = 0; i < read.pieces.length; i++) {
    await read.pieces[i];
    const end = Math.min((i + 1) * READ_CHUNK, read.data.length);
    for (let offset = i * READ_CHUNK; offset < end; offset += YIELD_EVERY) {
      yield read.data.subarray(offset, Math.min(offset + YIELD_EVERY, end));
      // Pieces already read resolve at once, and compressing them would run
      // as one long stretch of promise callbacks that starves I/O: the
      // repository's answer and the object's first writes, each a chain of
      // file system calls, would wait for the whole file. A turn of the event
      // loop per compression block lets them in.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await read.done;
}

async function scanLarge(filePath: string, expectedSize: number, signal: AbortSignal): Promise<number> {
  let size = 0;
  let crc = 0;
  for await (const chunk of createReadStream(filePath, { highWaterMark: READ_CHUNK, signal })) {
    size += (chunk as Buffer).length;
    crc = crc32c(chunk as Buffer, crc);
  }
  if (size !== expectedSize) throw changed(filePath);
  return crc;
}

/** Fails the stream (so the upload is not finalised) if the file changed since the scan. */
function expectSameContent(size: number, scanned: Promise<number>, filePath: string): Transform {
  let seen = 0;
  let running = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      seen += chunk.length;
      running = crc32c(chunk, running);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      scanned.then(
        (crc) => done(seen !== size || running !== crc ? changed(filePath) : null),
        (err: Error) => done(err),
      );
    },
  });
}

function changed(filePath: string): InvalidInputError {
  const name = filePath.slice(filePath.lastIndexOf('/') + 1);
  return new InvalidInputError(
    `${name} changed while it was being archived`,
    'PostgreSQL must not modify a segment it asked to archive; retry, and check nothing else writes to pg_wal',
  );
}

function unreadable(filePath: string, err: unknown): InvalidInputError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT')
    return new InvalidInputError(`${filePath} does not exist`, "pass the path of a WAL file relative to the data directory, as archive_command's %p");
  if (code === 'EISDIR') return new InvalidInputError(`${filePath} is not a regular file`, "pass the path of a WAL file, as archive_command's %p");
  return new InvalidInputError(`cannot read ${filePath}: ${code ?? 'unknown error'}`, "check the file's permissions for the user running gcwal", {
    cause: err,
  });
}
