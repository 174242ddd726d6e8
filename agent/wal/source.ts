/**
 * Reading a file from pg_wal for wal-push: its size, CRC32C and first bytes,
 * and its contents for the upload. A segment of up to `wholeFileLimit` bytes
 * (16 MiB by default; PostgreSQL allows 1 MiB to 1 GiB) is read once into
 * one buffer that serves the checks and the upload; a larger one is scanned
 * once for its checksum and streamed again for the upload, so memory stays
 * bounded whatever --wal-segsize the cluster uses.
 */
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { crc32c } from '../../core/checksum/crc32c.ts';
import { InvalidInputError } from '../../core/errors.ts';

/** Largest file read into memory whole: 64 MiB, four times the default segment size. */
export const WHOLE_FILE_LIMIT = 64 * 1024 * 1024;

/** Bytes kept from the start of the file for the header check (the long page header is 40). */
export const HEAD_BYTES = 64;

/**
 * read() size: on the VMs measured, single I/O calls over 1 MiB are several
 * times slower than the same bytes in 1 MiB calls.
 */
const READ_CHUNK = 1024 * 1024;

/** What wal-push knows about the local file before uploading it. */
export interface WalSource {
  size: number;
  /** CRC32C of the whole file, unsigned */
  crc: number;
  /** the first HEAD_BYTES bytes (fewer for a shorter file) */
  head: Buffer;
  /**
   * A fresh stream of the contents for one upload attempt; call once per
   * attempt. A streamed (large) file fails the stream with
   * InvalidInputError if its bytes differ from the scan's, so a changed file
   * never completes an upload.
   */
  open(signal?: AbortSignal): Readable;
}

/**
 * Read `filePath` (a regular file) and describe it. Files of up to
 * `wholeFileLimit` bytes are read once and held in memory; larger ones are
 * read twice (scan now, stream on `open`). Throws InvalidInputError when the
 * file is missing, not a regular file or cannot be opened, or changes size
 * while read; a failing read rejects with the file system's error.
 */
export async function readWalSource(filePath: string, options: { wholeFileLimit?: number; signal?: AbortSignal } = {}): Promise<WalSource> {
  const limit = options.wholeFileLimit ?? WHOLE_FILE_LIMIT;
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(filePath, 'r');
  } catch (err) {
    throw unreadable(filePath, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new InvalidInputError(`${filePath} is not a regular file`, 'pass the path of a WAL file, as archive_command\'s %p');
    if (st.size <= limit) return await readWhole(handle, st.size, filePath, options.signal);
  } finally {
    await handle.close().catch(() => {});
  }
  return scanLarge(filePath, options.signal);
}

async function readWhole(handle: fs.FileHandle, size: number, filePath: string, signal?: AbortSignal): Promise<WalSource> {
  const data = Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(data, filled, Math.min(READ_CHUNK, size - filled), filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  // One more byte tells a file that grew after fstat from one that ended there.
  const { bytesRead: extra } = await handle.read(Buffer.allocUnsafe(1), 0, 1, filled);
  if (filled !== size || extra !== 0) throw changed(filePath);
  return {
    size,
    crc: crc32c(data),
    head: data.subarray(0, HEAD_BYTES),
    // 1 MiB pieces, so compression and writing overlap instead of one 16 MiB
    // chunk being compressed whole before the first byte is written.
    open: () => Readable.from(pieces(data, READ_CHUNK), { objectMode: false }),
  };
}

function* pieces(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

async function scanLarge(filePath: string, signal?: AbortSignal): Promise<WalSource> {
  let size = 0;
  let crc = 0;
  const headParts: Buffer[] = [];
  let headLength = 0;
  for await (const chunk of createReadStream(filePath, { highWaterMark: READ_CHUNK, signal })) {
    const buf = chunk as Buffer;
    if (headLength < HEAD_BYTES) {
      headParts.push(buf.subarray(0, HEAD_BYTES - headLength));
      headLength += Math.min(buf.length, HEAD_BYTES - headLength);
    }
    size += buf.length;
    crc = crc32c(buf, crc);
  }
  return {
    size,
    crc,
    head: Buffer.concat(headParts),
    // The callback form returns the last stream and destroys it with any
    // earlier stage's error, so the consumer sees a read failure or a change.
    open: (openSignal) => pipeline(createReadStream(filePath, { highWaterMark: READ_CHUNK, signal: openSignal }), expectSameContent(size, crc, filePath), () => {}),
  };
}

/** Fails the stream (so the upload is not finalised) if the file changed since the scan. */
function expectSameContent(size: number, crc: number, filePath: string): Transform {
  let seen = 0;
  let running = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      seen += chunk.length;
      running = crc32c(chunk, running);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      done(seen !== size || running !== crc ? changed(filePath) : null);
    },
  });
}

function changed(filePath: string): InvalidInputError {
  const name = filePath.slice(filePath.lastIndexOf('/') + 1);
  return new InvalidInputError(`${name} changed while it was being archived`, 'PostgreSQL must not modify a segment it asked to archive; retry, and check nothing else writes to pg_wal');
}

function unreadable(filePath: string, err: unknown): InvalidInputError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new InvalidInputError(`${filePath} does not exist`, 'pass the path of a WAL file relative to the data directory, as archive_command\'s %p');
  if (code === 'EISDIR') return new InvalidInputError(`${filePath} is not a regular file`, 'pass the path of a WAL file, as archive_command\'s %p');
  return new InvalidInputError(`cannot read ${filePath}: ${code ?? 'unknown error'}`, 'check the file\'s permissions for the user running gcwal', { cause: err });
}
