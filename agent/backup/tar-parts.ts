import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { BackupPart, ManifestEntry } from '../../core/backup/meta.ts';
import { BlockChecksums, BLOCKS_MIN_FILE } from '../../core/checksum/blocks.ts';
import { ChecksumMeter, crc32c, crc32cBase64 } from '../../core/checksum/crc32c.ts';
import type { Codec } from '../../core/codec/types.ts';
import { GcwalError, InvalidInputError } from '../../core/errors.ts';
import { Meta } from '../../core/layout.ts';
import type { Storage } from '../../core/storage/types.ts';
import { BlockIndex, recordOffsets, TarOffsets } from './offsets.ts';
import type { PlannedPart } from './plan.ts';
import type { WalkEntry } from './walk.ts';

/** Bytes read from a file at a time: bounds memory per part. */
const READ_CHUNK = 256 * 1024;

/** What building one part needs. */
export interface PartWriterOptions {
  storage: Storage;
  /** object key of the part */
  key: string;
  codec: Codec;
  /** codec level; undefined for the codec's default */
  level?: number;
  signal: AbortSignal;
  /** called as raw file bytes go into the tar, and once per file completed */
  onProgress?: (bytes: number, files: number) => void;
  /** a file that vanished before it could be opened */
  onSkip?: (relPath: string, reason: string) => void;
  /**
   * Called after a file is opened and its size taken for the tar header,
   * before its data is read. Lets tests change the file in that window.
   */
  afterOpen?: (entry: WalkEntry) => Promise<void> | void;
}

/** A part as stored, with the manifest lines of what went into it. */
export interface WrittenPart {
  part: BackupPart;
  manifest: ManifestEntry[];
}

type Pack = ReturnType<typeof tar.pack>;
type Sink = ReturnType<Pack['entry']>;

/**
 * Resolve when `sink` can take more data; reject if the sink or the tar
 * stream is destroyed or the signal aborts first (a failed upload destroys
 * them, and nothing would ever drain).
 */
function drained(sink: Sink, pack: Pack, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      sink.off('drain', onDrain);
      sink.off('close', onClose);
      pack.off('close', onClose);
      signal.removeEventListener('abort', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(signal.reason ?? new Error('tar stream closed'));
    };
    sink.on('drain', onDrain);
    sink.on('close', onClose);
    pack.on('close', onClose);
    signal.addEventListener('abort', onClose, { once: true });
  });
}

async function write(sink: Sink, pack: Pack, chunk: Buffer, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  if (!sink.write(chunk)) await drained(sink, pack, signal);
}

/** Start an entry; the promise settles when the tar stream has taken all of it. */
function startEntry(pack: Pack, header: Parameters<Pack['entry']>[0]): { sink: Sink; done: Promise<void> } {
  let settle!: (err?: Error | null) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  // When copying fails midway, the entry is destroyed and nobody awaits
  // `done` any more: the failure is reported once, by whoever failed first.
  done.catch(() => {});
  const sink = pack.entry(header, settle);
  sink.on('error', () => {});
  return { sink, done };
}

async function openIfPresent(entry: WalkEntry): Promise<FileHandle | undefined> {
  try {
    return await fs.open(entry.source, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InvalidInputError(
      `cannot open ${entry.source}: ${(err as NodeJS.ErrnoException).code}`,
      'run gcwal as the postgres OS user (or root) on the database host',
      { cause: err },
    );
  }
}

/**
 * Copy one file into the tar. The header takes the size at open time; the
 * data is read in bounded chunks up to that size. A file that shrank since is
 * padded with zeros, one that grew is cut: the tar stays well formed and WAL
 * replay repairs the file, as with any base backup. Returns the manifest line
 * (size and CRC32C of exactly what went into the tar), or undefined when the
 * file vanished before it was opened.
 */
async function addFile(pack: Pack, entry: WalkEntry, partIndex: number, options: PartWriterOptions): Promise<ManifestEntry | undefined> {
  const { signal } = options;
  const handle = await openIfPresent(entry);
  if (!handle) {
    options.onSkip?.(entry.path, 'vanished before it was copied');
    return undefined;
  }
  try {
    const st = await handle.stat();
    await options.afterOpen?.(entry);
    const size = st.size;
    const { sink, done } = startEntry(pack, { name: entry.path, type: 'file', size, mode: entry.mode, mtime: st.mtime });
    // Large files get block checksums (for a delta restore's block
    // comparison), from which their whole CRC32C follows in the same pass.
    const blocks = size >= BLOCKS_MIN_FILE ? new BlockChecksums(size) : undefined;
    let crc = 0;
    const sum = (chunk: Buffer) => {
      if (blocks) blocks.update(chunk);
      else crc = crc32c(chunk, crc);
    };
    let written = 0;
    if (size > 0) {
      const stream = handle.createReadStream({ start: 0, end: size - 1, highWaterMark: READ_CHUNK, autoClose: false });
      const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      try {
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await chunks.next();
          } catch (err) {
            throw new InvalidInputError(
              `cannot read ${entry.source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
              'check the disk and the file permissions',
              { cause: err },
            );
          }
          if (next.done) break;
          sum(next.value);
          written += next.value.length;
          await write(sink, pack, next.value, signal);
          options.onProgress?.(next.value.length, 0);
        }
      } finally {
        stream.destroy();
      }
    }
    while (written < size) {
      const zeros = Buffer.alloc(Math.min(READ_CHUNK, size - written));
      sum(zeros);
      written += zeros.length;
      await write(sink, pack, zeros, signal);
      options.onProgress?.(zeros.length, 0);
    }
    sink.end(undefined); // streamx types end() with a required argument
    await done;
    options.onProgress?.(0, 1);
    const line: ManifestEntry = {
      path: entry.path,
      type: 'file',
      size,
      crc32c: crc32cBase64(blocks ? blocks.finish() : crc),
      part: partIndex,
      mode: entry.mode,
      mtime: st.mtime.toISOString(),
    };
    if (blocks) Object.assign(line, { blockSize: blocks.blockSize, blocks: blocks.toBase64() });
    return line;
  } finally {
    await handle.close();
  }
}

async function addDirectory(pack: Pack, entry: WalkEntry, partIndex: number): Promise<ManifestEntry> {
  const { sink, done } = startEntry(pack, { name: entry.path, type: 'directory', mode: entry.mode, mtime: entry.mtime });
  sink.end(undefined);
  await done;
  return { path: entry.path, type: 'directory', size: 0, part: partIndex, mode: entry.mode, mtime: entry.mtime.toISOString() };
}

/** Feed the part's entries into the tar stream, then finish it. */
async function fill(pack: Pack, plan: PlannedPart, options: PartWriterOptions, manifest: ManifestEntry[]): Promise<number> {
  let files = 0;
  for (const entry of plan.entries) {
    options.signal.throwIfAborted();
    if (entry.type === 'directory') {
      manifest.push(await addDirectory(pack, entry, plan.index));
    } else if (entry.type === 'file') {
      const line = await addFile(pack, entry, plan.index, options);
      if (line) {
        manifest.push(line);
        files++;
      }
    }
  }
  pack.finalize();
  return files;
}

/**
 * Build one part and upload it: tar (tar-stream) → raw size/CRC32C →
 * compressor → `storage.write` (create-only; the object carries its codec in
 * its metadata). Memory stays bounded by the read chunk and the codec's and
 * driver's buffers, whatever the part's size. If anything fails, the upload
 * is aborted (the driver publishes nothing) and the cause is thrown: the
 * first error if it is a GcwalError (storage, unreadable file), else the
 * upload's or the copy's GcwalError, else the first error.
 */
export async function writePart(plan: PlannedPart, options: PartWriterOptions): Promise<WrittenPart> {
  const controller = new AbortController();
  const outer = options.signal;
  const onOuterAbort = () => controller.abort(outer.reason);
  if (outer.aborted) onOuterAbort();
  else outer.addEventListener('abort', onOuterAbort, { once: true });
  const signal = controller.signal;
  const inner: PartWriterOptions = { ...options, signal };

  const pack = tar.pack();
  // Failures reach us through the promises below; without a listener the
  // 'error' that destroy(err) emits would crash the process.
  pack.on('error', () => {});
  const meter = new ChecksumMeter();
  // Where each file lies in the part, for a delta restore's ranged reads (offsets.ts).
  const offsets = new TarOffsets();
  const blocks = new BlockIndex();
  // The part's raw size and CRC32C are recorded (rawSize, rawCrc32c) and checked by every reader.
  const compressor = options.codec.compressor(options.level, { rawChecksumRecorded: true, onBlock: blocks.add });
  const manifest: ManifestEntry[] = [];

  const upload = options.storage.write(options.key, compressor, {
    signal,
    metadata: { [Meta.codec]: options.codec.name },
    contentType: 'application/octet-stream',
  });
  // tar-stream's pack is a streamx stream; reading it through its async
  // iterator keeps Node's pipeline from treating it as a Node stream.
  const tarBytes = async function* () {
    for await (const chunk of pack) yield chunk as Buffer;
  };
  const piping = pipeline(tarBytes, meter, offsets, compressor, { signal });
  const filling = fill(pack, plan, inner, manifest);
  try {
    const [info, , files] = await Promise.all([upload, piping, filling]);
    recordOffsets(manifest, offsets.entries, blocks);
    return {
      part: {
        key: options.key,
        rawSize: meter.bytes,
        rawCrc32c: meter.base64,
        storedSize: info.size,
        storedCrc32c: info.crc32c,
        codec: options.codec.name,
        files,
      },
      manifest,
    };
  } catch (err) {
    controller.abort(err);
    pack.destroy(err as Error);
    const settled = await Promise.allSettled([upload, piping, filling]);
    if (err instanceof GcwalError) throw err;
    // A driver that fails usually destroys its source too, and the
    // pipeline's "premature close" may settle first: report the cause (the
    // upload's error, then a file's) rather than its echo.
    const cause = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected' && r.reason instanceof GcwalError);
    throw cause ? cause.reason : err;
  } finally {
    outer.removeEventListener('abort', onOuterAbort);
  }
}
