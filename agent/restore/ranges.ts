/**
 * A delta restore's partial read of a part: when only some of a part's
 * files must be written, read just the stored byte ranges of the lzop
 * blocks holding them (recorded at backup-push, agent/backup/offsets.ts),
 * decode those blocks and write the files' bytes, instead of reading,
 * decoding and parsing the whole part. Each file is verified against the
 * manifest's size and CRC32C (and block checksums when patched) as a full
 * restore verifies it; the part's own whole-part checksums cannot be, as
 * the part is not read whole.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupPart, ManifestEntry } from '../../core/backup/meta.ts';
import { lzopBlocksDecompressor, readLzopHeader } from '../../core/codec/lzo/lzop.ts';
import { CorruptObjectError, GcwalError } from '../../core/errors.ts';
import type { Storage } from '../../core/storage/types.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';
import { type ExtractResult, type ExtractTarget, type PartLedger, restoreFileBytes } from './extract.ts';
import { placeBackupPath } from './paths.ts';

const HINT = 'the backup is damaged; restore another backup';

/**
 * Stored ranges closer than this are read as one: a request costs more
 * than decoding a block or two that is not needed.
 */
const MERGE_GAP = 1024 * 1024;
/**
 * Above this share of the part's stored bytes the whole part is read
 * instead: then the ranges save little, and the whole read also checks the
 * part's own checksums.
 */
const MAX_SHARE = 0.5;
/** Enough for any header gcwal writes (lzop's with no name and no extra field is 40 bytes) and most others. */
const HEADER_READ = 4096;

/** A file the manifest places in its part (ManifestEntry's range fields set). */
type RangedEntry = ManifestEntry & { offset: number; blockOffset: number; storedOffset: number; storedEnd: number };

/** One ranged read: stored bytes [storedOffset, storedEnd) decode to raw bytes from blockOffset on, and hold `files`, in order. */
export interface Run {
  storedOffset: number;
  storedEnd: number;
  blockOffset: number;
  files: RangedEntry[];
}

/** What a ranged restore of one part writes, and every file of the part it accounts for. */
export interface RangedPart {
  runs: Run[];
  /** every file of the part, written or kept: what the restore has seen of it */
  paths: string[];
  files: number;
  bytes: number;
}

function hasRange(entry: ManifestEntry): entry is RangedEntry {
  return entry.offset !== undefined && entry.blockOffset !== undefined && entry.storedOffset !== undefined && entry.storedEnd !== undefined;
}

/**
 * The ranged reads that write `toWrite` (files of `part`), or undefined
 * when the whole part should be read: its codec is not lzo, a file has no
 * range (a manifest before format 2), a range lies outside the part, or the
 * ranges come to more than MAX_SHARE of it. `all` is every file of the part.
 * Pure.
 */
export function planRangedPart(part: BackupPart, toWrite: readonly ManifestEntry[], all: readonly ManifestEntry[]): RangedPart | undefined {
  if (part.codec !== 'lzo' || toWrite.length === 0) return undefined;
  const files: RangedEntry[] = [];
  for (const entry of toWrite) {
    if (!hasRange(entry) || entry.storedEnd > part.storedSize || entry.offset + entry.size > part.rawSize) return undefined;
    files.push(entry);
  }
  files.sort((a, b) => a.offset - b.offset);
  const runs: Run[] = [];
  for (const f of files) {
    const last = runs.at(-1);
    if (last && f.storedOffset <= last.storedEnd + MERGE_GAP && f.blockOffset >= last.blockOffset) {
      last.storedEnd = Math.max(last.storedEnd, f.storedEnd);
      last.files.push(f);
    } else {
      runs.push({ storedOffset: f.storedOffset, storedEnd: f.storedEnd, blockOffset: f.blockOffset, files: [f] });
    }
  }
  const read = runs.reduce((n, r) => n + r.storedEnd - r.storedOffset, 0);
  if (read > part.storedSize * MAX_SHARE) return undefined;
  return { runs, paths: all.map((e) => e.path), files: all.length, bytes: all.reduce((n, e) => n + e.size, 0) };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Decoded bytes of one run, handed out file by file in raw order. */
class RawCursor {
  #chunk: Buffer = Buffer.alloc(0);
  /** raw offset of #chunk's first byte */
  #at: number;

  constructor(
    private readonly chunks: AsyncIterator<Buffer>,
    start: number,
    private readonly where: string,
  ) {
    this.#at = start;
  }

  /** The raw bytes [offset, offset + size), as they are decoded; offsets must not go back. */
  async *take(offset: number, size: number, what: string): AsyncGenerator<Buffer> {
    const end = offset + size;
    let pos = offset;
    while (pos < end) {
      const chunkEnd = this.#at + this.#chunk.length;
      if (pos >= chunkEnd) {
        const next = await this.chunks.next();
        if (next.done) throw new CorruptObjectError(`${this.where} ends before the bytes of ${what} (at ${pos} of ${offset}-${end})`, HINT);
        this.#at = chunkEnd;
        this.#chunk = next.value;
        continue;
      }
      if (pos < this.#at) throw new CorruptObjectError(`${this.where}: ${what} begins before the bytes already read`, HINT);
      const to = Math.min(this.#chunk.length, end - this.#at);
      yield this.#chunk.subarray(pos - this.#at, to);
      pos = this.#at + to;
    }
  }
}

/**
 * Write the files `plan` names from ranged reads of part `index`, and count
 * every file of the part as seen. Throws CorruptObjectError when the part's
 * header or a block does not decode, a range ends early, or a file's bytes
 * do not match the manifest; storage errors as they come (the caller
 * retries the part).
 */
export async function restorePartRanges(
  storage: Storage,
  part: BackupPart,
  index: number,
  plan: RangedPart,
  target: ExtractTarget,
  ledger: PartLedger,
  signal?: AbortSignal,
): Promise<ExtractResult> {
  const where = `part ${index} of backup ${target.backupName}`;
  for (const p of plan.paths) {
    if (target.seen.has(p)) throw new CorruptObjectError(`${quoteForMessage(p, 200)} in ${where} appears twice in the backup`, HINT);
    target.seen.add(p);
    ledger.paths.push(p);
  }
  let header: ReturnType<typeof readLzopHeader>;
  try {
    header = readLzopHeader(await readAll(await storage.read(part.key, { signal, start: 0, end: Math.min(part.storedSize, HEADER_READ) - 1 })));
  } catch (err) {
    if (err instanceof CorruptObjectError) throw new CorruptObjectError(`${where}: ${err.message}`, HINT, { cause: err });
    throw err;
  }
  for (const run of plan.runs) {
    if (run.storedOffset < header.size) throw new CorruptObjectError(`${where}: the manifest places a file inside the part's header`, HINT);
    const stored = await storage.read(part.key, { signal, start: run.storedOffset, end: run.storedEnd - 1 });
    const decoded = new PassThrough({ objectMode: true });
    // Every decoded byte lands in a file whose CRC32C is checked.
    const feeding = pipeline(stored, lzopBlocksDecompressor(header.header, { native: true, decodedVerifiedByCaller: true }), decoded, { signal });
    feeding.catch(() => {}); // awaited below; a failure also ends `decoded` with it
    const cursor = new RawCursor(decoded[Symbol.asyncIterator]() as AsyncIterator<Buffer>, run.blockOffset, `the ranged read of ${where}`);
    try {
      for (const file of run.files) {
        const place = placeBackupPath(file.path, target.dest, target.tablespaces, where);
        await restoreFileBytes(
          cursor.take(file.offset, file.size, quoteForMessage(file.path, 200)),
          file,
          file.path,
          place.absolute,
          target,
          ledger,
          where,
          signal,
        );
      }
    } catch (err) {
      // A failure of the bytes coming in (codec, storage) is the cause; what it did to a file is its symptom.
      stored.destroy();
      const upstream = await feeding.then(
        () => undefined,
        (e: unknown) => e,
      );
      if (upstream instanceof CorruptObjectError && !upstream.message.includes(target.backupName))
        throw new CorruptObjectError(`${where}: ${upstream.message}`, HINT, { cause: upstream });
      throw upstream instanceof GcwalError ? upstream : err;
    } finally {
      decoded.destroy();
    }
    // The rest of the run (bytes after its last file) is not needed.
    stored.destroy();
    await feeding.catch(() => {});
  }
  return { files: plan.files, bytes: plan.bytes };
}
