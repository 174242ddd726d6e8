/**
 * Reading a part's tar stream to its end with tar-stream, the library that
 * wrote it, without extracting anything: each entry's path is checked, its
 * data counted (and hashed when asked), and the stream must end with the
 * end-of-archive marker after its last entry (tar-stream itself accepts a
 * stream cut at an entry boundary).
 */
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract } from 'tar-stream';
import { checkBackupPath } from '../backup/paths.ts';
import { crc32c, crc32cBase64 } from '../checksum/crc32c.ts';
import { CorruptObjectError, GcwalError } from '../errors.ts';

/** Bytes of a tar block; entries and their data are padded to it. */
const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
const END_MARKER = 2 * BLOCK;

/** One entry as read. */
export interface TarEntryFacts {
  /** checked with checkBackupPath, without a trailing slash */
  path: string;
  /** tar-stream's type, with `contiguous-file` read as `file` */
  type: string;
  /** data bytes */
  size: number;
  /** CRC32C of the data, base64; files only, when hashing */
  crc32c?: string;
}

/** What a whole tar stream held. */
export interface TarScan {
  entries: number;
  /** entries of type file */
  files: number;
  /** data bytes of those files */
  fileBytes: number;
}

/** Counts the bytes going through and remembers where the last non-zero byte was. */
class ZeroTailMeter extends Transform {
  bytes = 0;
  lastNonZero = -1;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // From the end: data rarely ends in a long run of zeros, so this stops early.
    for (let i = chunk.length - 1; i >= 0; i--) {
      if (chunk[i] !== 0) {
        this.lastNonZero = this.bytes + i;
        break;
      }
    }
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** A parse error of tar-stream becomes CorruptObjectError; ours and aborts pass. */
function tarError(err: unknown, where: string): unknown {
  if (err instanceof GcwalError || (err as Error)?.name === 'AbortError') return err;
  return new CorruptObjectError(`${where} is not a valid tar stream: ${(err as Error)?.message ?? String(err)}`, 'the backup is damaged; take a new backup', {
    cause: err,
  });
}

/**
 * Read the tar stream `source` to its end, calling `onEntry` once per entry
 * (after its data was read) in stream order; `onEntry` throws to stop.
 * Resolves with the totals. Rejects with the first failure: an error of
 * `source` (the stages before it: stored bytes, codec) when it has one, else
 * CorruptObjectError naming `where` for an unsafe path, a malformed tar or a
 * missing end-of-archive marker (or non-zero bytes after it), or whatever
 * `onEntry` threw.
 */
export async function scanTar(
  source: Readable,
  where: string,
  onEntry: (entry: TarEntryFacts) => void,
  options: { hashFiles: boolean; signal?: AbortSignal },
): Promise<TarScan> {
  const meter = new ZeroTailMeter();
  const extract = tarExtract();
  const feeding = pipeline(source, meter, extract as unknown as Writable, { signal: options.signal });
  feeding.catch(() => {}); // awaited below; its error also ends the iteration
  const scan: TarScan = { entries: 0, files: 0, fileBytes: 0 };
  /** where the last entry's padded data ends; undefined if tar-stream stops reporting offsets */
  let lastEnd: number | undefined = 0;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      const path = checkBackupPath(header.name, `${where}, entry ${scan.entries}`);
      const type = header.type === 'contiguous-file' ? 'file' : (header.type ?? 'file');
      const hash = options.hashFiles && type === 'file';
      let crc = 0;
      let size = 0;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (hash) crc = crc32c(chunk, crc);
      }
      // byteOffset: where the entry's data starts (tar-stream sets it; not in its typings)
      const offset = (header as { byteOffset?: unknown }).byteOffset;
      lastEnd = typeof offset === 'number' && lastEnd !== undefined ? offset + padded(size) : undefined;
      scan.entries++;
      if (type === 'file') {
        scan.files++;
        scan.fileBytes += size;
      }
      onEntry(hash ? { path, type, size, crc32c: crc32cBase64(crc) } : { path, type, size });
    }
    await feeding;
  } catch (err) {
    source.destroy();
    // When the bytes coming in failed (stored checksum, codec, storage),
    // that is the cause; what it did to the tar parser is only a symptom.
    const upstream = await feeding.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw upstream instanceof GcwalError ? upstream : tarError(err, where);
  }
  const end = lastEnd ?? meter.bytes - END_MARKER;
  if (meter.bytes < end + END_MARKER || meter.lastNonZero >= end) {
    throw new CorruptObjectError(
      `${where} is not a complete tar stream: it does not end with the end-of-archive marker after its last entry`,
      'the part was cut short or altered; take a new backup',
    );
  }
  return scan;
}
