/**
 * Block-level delta (backup-fetch --delta): a local file that differs from
 * the backup only in some blocks is brought to the backup's content in
 * place, writing only those blocks. Which blocks differ is found before the
 * parts are read (planPatch, from the manifest's block CRC32Cs); the part's
 * file is then streamed as usual, its whole size and CRC32C verified, and
 * only the bytes of differing blocks written, at their offsets.
 */
import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs/promises';
import type { ManifestEntry } from '../../core/backup/meta.ts';
import { BlockChecksums, blockCount, decodeBlockCrcs } from '../../core/checksum/blocks.ts';
import { crc32cBase64 } from '../../core/checksum/crc32c.ts';
import { eachChunk, fileChecksum } from '../../core/checksum/file.ts';
import { CorruptObjectError } from '../../core/errors.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';

/** The blocks of one local file that must be written from the backup. */
export interface BlockPatch {
  blockSize: number;
  /** 1 for each block to write */
  differing: Uint8Array;
  /** how many blocks are set in `differing` */
  count: number;
}

/** What comparing a local file with its manifest entry found. */
export type FileComparison = { kind: 'same' } | { kind: 'patch'; patch: BlockPatch } | { kind: 'rewrite' };

/**
 * Compare the regular file `absolute` (of `localSize` bytes) with `entry`,
 * reading it once. `same`: its size and CRC32C are the manifest's. `patch`:
 * the entry has block checksums and some blocks match; the file is cut or
 * extended to the entry's size, so writing the differing blocks makes it
 * the backup's. `rewrite`: anything else (no block checksums and a
 * difference, or no block left to keep).
 */
export async function compareFile(absolute: string, localSize: number, entry: ManifestEntry): Promise<FileComparison> {
  const expected =
    entry.blocks !== undefined && entry.blockSize !== undefined ? decodeBlockCrcs(entry.blocks, blockCount(entry.size, entry.blockSize)) : undefined;
  if (!expected || !entry.blockSize) {
    if (localSize !== entry.size) return { kind: 'rewrite' };
    const sum = await fileChecksum(absolute);
    return sum.size === entry.size && sum.crc32c === entry.crc32c ? { kind: 'same' } : { kind: 'rewrite' };
  }
  const blockSize = entry.blockSize;
  const compared = Math.min(localSize, entry.size);
  const sums = new BlockChecksums(entry.size, blockSize);
  await feed(absolute, compared, sums);
  const whole = sums.finish();
  if (localSize === entry.size && crc32cBase64(whole) === entry.crc32c) return { kind: 'same' };
  // Blocks wholly present locally, in full or as the file's short last block.
  const complete = localSize >= entry.size ? expected.length : Math.floor(localSize / blockSize);
  const differing = new Uint8Array(expected.length);
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    if (i >= complete || sums.crcs[i] !== expected[i]) {
      differing[i] = 1;
      count++;
    }
  }
  // Nothing to keep, or the blocks agree but the file does not (a manifest at odds with itself): write it whole.
  if (count === expected.length || count === 0) return { kind: 'rewrite' };
  if (localSize !== entry.size) await fs.truncate(absolute, entry.size);
  return { kind: 'patch', patch: { blockSize, differing, count } };
}

async function feed(file: string, bytes: number, sums: BlockChecksums): Promise<void> {
  if (bytes === 0) return;
  await eachChunk(file, (chunk) => sums.update(chunk), bytes);
}

const HINT = 'the backup is damaged; restore another backup';

/** Gathered before one write, as a full restore does (extract.ts WRITE_BATCH). */
const WRITE_BATCH = 512 * 1024;
/**
 * Writes of one file under way at once. Changed pages spread over a file
 * make runs of one or two blocks: awaiting each write before reading on
 * would make every run cost a round trip to libuv's threads, so they are
 * issued without waiting, up to this many (and IN_FLIGHT_BYTES) at a time.
 */
const IN_FLIGHT = 32;
const IN_FLIGHT_BYTES = 8 * 1024 * 1024;

async function writeAt(fh: FileHandle, chunks: Buffer[], total: number, position: number): Promise<void> {
  let done = 0;
  const { bytesWritten } = await fh.writev(chunks, position);
  done = bytesWritten;
  if (done < total) {
    const rest = Buffer.concat(chunks).subarray(done);
    for (let at = 0; at < rest.length; ) at += (await fh.write(rest, at, rest.length - at, position + done + at)).bytesWritten;
  }
}

/**
 * Stream one file's bytes from its part (`source`) over the local file
 * opened as `fh`, writing only the blocks `patch` marks. The bytes are
 * verified against the entry's size, CRC32C and block checksums as they
 * pass; throws CorruptObjectError when they do not match. Returns
 * the bytes written.
 */
export async function applyPatch(
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  fh: FileHandle,
  entry: ManifestEntry,
  patch: BlockPatch,
  what: string,
  signal?: AbortSignal,
): Promise<number> {
  const { blockSize, differing } = patch;
  // The streamed blocks are checked against the manifest's block checksums
  // too: the blocks kept were judged by those, so they must be the backup's.
  const expected = decodeBlockCrcs(entry.blocks ?? '', blockCount(entry.size, blockSize));
  if (!expected || entry.blockSize !== blockSize) throw new CorruptObjectError(`${what}: the manifest has no block checksums of ${blockSize} bytes`, HINT);
  const sums = new BlockChecksums(entry.size, blockSize);
  let offset = 0;
  let run: Buffer[] = [];
  let runStart = 0;
  let runLength = 0;
  let written = 0;
  // Writes issued and not yet awaited, oldest first; their buffers are the
  // decoder's own, never reused, so they may be held past the next chunk.
  const inFlight: { done: Promise<unknown>; bytes: number }[] = [];
  let inFlightBytes = 0;
  let failure: unknown;
  const settleOldest = async () => {
    const oldest = inFlight.shift()!;
    await oldest.done;
    inFlightBytes -= oldest.bytes;
    if (failure !== undefined) throw failure;
  };
  const flush = async () => {
    if (runLength === 0) return;
    const bytes = runLength;
    // The rejection is kept and thrown by the next settleOldest, so none goes unhandled.
    const done = writeAt(fh, run, bytes, runStart).catch((err: unknown) => {
      failure ??= err;
    });
    inFlight.push({ done, bytes });
    inFlightBytes += bytes;
    written += bytes;
    run = [];
    runLength = 0;
    while (inFlight.length >= IN_FLIGHT || inFlightBytes >= IN_FLIGHT_BYTES) await settleOldest();
  };
  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      if (offset + chunk.length > entry.size) throw new CorruptObjectError(`${what}: more than the expected ${entry.size} bytes`, HINT);
      // The whole CRC32C follows from the block CRCs (BlockChecksums.finish): one pass over the bytes, not two.
      sums.update(chunk);
      for (let at = 0; at < chunk.length; ) {
        const block = Math.floor(offset / blockSize);
        const take = Math.min(chunk.length - at, (block + 1) * blockSize - offset);
        if (differing[block] === 1) {
          if (runLength > 0 && runStart + runLength !== offset) await flush();
          if (runLength === 0) runStart = offset;
          run.push(chunk.subarray(at, at + take));
          runLength += take;
          if (runLength >= WRITE_BATCH) await flush();
        }
        at += take;
        offset += take;
      }
    }
    signal?.throwIfAborted();
    if (offset !== entry.size) throw new CorruptObjectError(`${what}: ${offset} bytes instead of ${entry.size}`, HINT);
    const whole = crc32cBase64(sums.finish());
    if (whole !== entry.crc32c) throw new CorruptObjectError(`${what}: crc32c ${whole} does not match the recorded ${entry.crc32c}`, HINT);
    const wrong = expected.findIndex((crc, i) => crc !== sums.crcs[i]);
    if (wrong >= 0) throw new CorruptObjectError(`${what}: block ${wrong} does not match the manifest's block checksum`, HINT);
    await flush();
  } finally {
    // Nothing may still write to the file once this returns or throws (the caller closes it).
    await Promise.all(inFlight.map((w) => w.done));
  }
  if (failure !== undefined) throw failure;
  return written;
}

/** How a patched file is named in messages. */
export function patchWhat(relative: string, backupName: string, where: string): string {
  return `file ${quoteForMessage(relative, 200)} of backup ${backupName} (${where})`;
}
