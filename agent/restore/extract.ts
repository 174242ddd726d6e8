/**
 * Unpack one part (an uncompressed tar stream) onto disk, checking every
 * entry against the manifest as it goes. Each file is streamed straight to
 * its final place with backpressure, so memory stays bounded whatever the
 * file sizes; its size and CRC32C are verified on the way.
 */
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type ExtractEvents } from 'tar-stream';
import type { ManifestEntry } from '../../core/backup/meta.ts';
import { checkBackupPath } from '../../core/backup/paths.ts';
import { Verifier } from '../../core/checksum/verify.ts';
import { CorruptObjectError, GcwalError } from '../../core/errors.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';
import type { Progress } from '../progress.ts';
import { type DirectorySet, writeAllv } from './disk.ts';
import type { FileFinisher } from './file-finisher.ts';
import { placeBackupPath } from './paths.ts';
import { applyPatch, type BlockPatch, patchWhat } from './patch.ts';
import type { RangedPart } from './ranges.ts';

/**
 * Files written under a temporary name and renamed into place only once the
 * whole restore is verified. Without global/pg_control PostgreSQL refuses to
 * start, so a half-restored directory can never be mistaken for a cluster.
 */
export const HELD_BACK = new Set(['global/pg_control']);

/** Suffix of a held-back file until the restore completes. */
export const HELD_BACK_SUFFIX = '.gcwal-restoring';

/**
 * The mode a restored file or directory gets from the manifest's: the
 * permission bits only. setuid, setgid and sticky are never restored (a data
 * directory has no use for them, and a repository anyone could write to must
 * not plant a setuid file on the host).
 */
export function restoredMode(mode: number): number {
  return mode & 0o777;
}

/** One entry of a tar stream as tar-stream yields it: a readable with its header. */
type TarEntry = ExtractEvents['entry'][1];

/** Shared by every part of one restore. */
export interface ExtractTarget {
  backupName: string;
  /** the data directory being restored */
  dest: string;
  /** tablespace OID → absolute target directory */
  tablespaces: ReadonlyMap<string, string>;
  manifest: ReadonlyMap<string, ManifestEntry>;
  /** backup paths met so far in any part; a path met twice is corruption */
  seen: Set<string>;
  dirs: DirectorySet;
  progress: Progress;
  /** backup-fetch --delta (delta.ts): files already in place, verified, not written again */
  keep?: ReadonlySet<string>;
  /** backup-fetch --delta: files kept in place of which only some blocks are written (patch.ts) */
  patch?: ReadonlyMap<string, BlockPatch>;
  /** backup-fetch --delta: parts all of whose files are kept, not read */
  skipParts?: ReadonlySet<number>;
  /** backup-fetch --delta: parts of which only the files to write are read, by part index (ranges.ts) */
  ranged?: ReadonlyMap<number, RangedPart>;
  /**
   * An older backup of an incremental's chain (chain.ts): the paths its parts
   * supply. Every other entry is checked against `manifest` and skipped, not
   * written (newer backups of the chain supply it, or it is gone since).
   */
  take?: ReadonlySet<string>;
  /** finishes written files (mode, times, fsync, close) in the background; without one each file is finished before the next */
  finisher?: FileFinisher;
}

/**
 * What one attempt at a part changed, so a failed attempt can be undone and
 * the part read again (a transient storage error halfway through a part).
 */
export interface PartLedger {
  /** backup paths this attempt added to `seen` */
  paths: string[];
  /** files it created (under their on-disk names) */
  files: string[];
  /** bytes and files it reported to the progress display */
  bytes: number;
  count: number;
}

/** An empty ledger for a new attempt. */
export function newLedger(): PartLedger {
  return { paths: [], files: [], bytes: 0, count: 0 };
}

/** Undo an attempt: delete its files, forget its paths, take back its progress. */
export async function undoAttempt(ledger: PartLedger, target: ExtractTarget): Promise<void> {
  for (const file of ledger.files) await fs.rm(file, { force: true });
  for (const p of ledger.paths) target.seen.delete(p);
  target.progress.add(-ledger.bytes, -ledger.count);
}

/** What one part held. */
export interface ExtractResult {
  files: number;
  bytes: number;
}

function corrupt(message: string): CorruptObjectError {
  return new CorruptObjectError(message, 'the backup is damaged; restore another backup');
}

/**
 * Read the tar stream `source` (already decompressed) of part `partIndex` and
 * write its entries under the restore targets. Throws CorruptObjectError,
 * naming the file and the backup, for an unsafe path, an entry the manifest
 * does not list (or lists in another part, or with another type or size), a
 * path met twice, a file whose bytes do not match the manifest's size and
 * CRC32C, or a tar the parser rejects. Files get the manifest's mode (its
 * permission bits, restoredMode) and mtime and are fsynced before the call
 * returns, or, with `target.finisher`, once the finisher is drained. Stops
 * with the signal.
 */
export async function extractPart(
  source: Readable,
  partIndex: number,
  target: ExtractTarget,
  ledger: PartLedger,
  signal?: AbortSignal,
): Promise<ExtractResult> {
  const where = `part ${partIndex} of backup ${target.backupName}`;
  const extract = tarExtract();
  const feeding = pipeline(source, extract as unknown as Writable, { signal });
  feeding.catch(() => {}); // awaited below; its error also ends the iteration
  const entries = extract[Symbol.asyncIterator]();
  const result: ExtractResult = { files: 0, bytes: 0 };
  try {
    for (;;) {
      let next: IteratorResult<TarEntry>;
      try {
        next = await entries.next();
      } catch (err) {
        throw tarError(err, where);
      }
      if (next.done) break;
      const written = await restoreEntry(next.value, partIndex, target, ledger, where, signal);
      if (written !== undefined) {
        result.files++;
        result.bytes += written;
      }
    }
    await feeding.catch((err) => {
      throw tarError(err, where);
    });
  } catch (err) {
    source.destroy();
    await entries.return?.();
    // When the bytes coming in failed (checksum, codec, storage), that is
    // the cause; what it did to the file being written is only a symptom.
    const upstream = await feeding.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw upstream instanceof GcwalError ? upstream : err;
  }
  return result;
}

/** A parse error of tar-stream becomes CorruptObjectError; our own and abort errors pass. */
function tarError(err: unknown, where: string): unknown {
  if (err instanceof GcwalError || (err as Error)?.name === 'AbortError') return err;
  return new CorruptObjectError(
    `${where} is not a valid tar stream: ${(err as Error)?.message ?? String(err)}`,
    'the backup is damaged; restore another backup',
    { cause: err },
  );
}

async function drain(entry: TarEntry): Promise<void> {
  for await (const _ of entry as AsyncIterable<unknown>) {
    // non-file entries carry no data; reading keeps the parser moving
  }
}

/** Restore one tar entry; returns the byte count for a file, undefined otherwise. */
async function restoreEntry(
  entry: TarEntry,
  partIndex: number,
  target: ExtractTarget,
  ledger: PartLedger,
  where: string,
  signal?: AbortSignal,
): Promise<number | undefined> {
  const header = entry.header;
  const relative = checkBackupPath(header.name, where);
  const name = `${quoteForMessage(relative, 200)} in ${where}`;
  const listed = target.manifest.get(relative);
  if (!listed) throw corrupt(`${name} is not in the manifest`);
  if (target.seen.has(relative)) throw corrupt(`${name} appears twice in the backup`);
  target.seen.add(relative);
  ledger.paths.push(relative);
  const tarType = header.type === 'contiguous-file' ? 'file' : header.type;
  if (tarType !== listed.type) throw corrupt(`${name} is a ${header.type} but the manifest lists a ${listed.type}`);
  if (listed.part !== undefined && listed.part !== partIndex) throw corrupt(`${name} belongs to part ${listed.part} according to the manifest`);
  if (listed.ref !== undefined) throw corrupt(`${name} is stored in backup ${listed.ref} according to the manifest`);
  if (target.take && !target.take.has(relative)) {
    if (listed.type === 'file' && header.size !== listed.size) throw corrupt(`${name} holds ${header.size} bytes but the manifest says ${listed.size}`);
    await drain(entry);
    // Counted as a file of the part (its file count is checked), with no bytes restored.
    return listed.type === 'file' ? 0 : undefined;
  }

  const place = placeBackupPath(relative, target.dest, target.tablespaces, where);
  switch (listed.type) {
    case 'directory':
      // The root of a tablespace (pg_tblspc/<oid> as a directory) is its target, created beforehand.
      if (!place.tablespaceLink) await target.dirs.ensure(place.absolute);
      await drain(entry);
      return undefined;
    case 'symlink':
      // Only the links of pg_tblspc are part of a backup; restore creates them
      // itself, pointing at the chosen targets. Any other link could make
      // later entries write outside the data directory.
      if (!place.tablespaceLink) throw corrupt(`${name} is a symbolic link outside pg_tblspc`);
      await drain(entry);
      return undefined;
    case 'file': {
      if (place.tablespaceLink) throw corrupt(`${name} is a file where a tablespace link belongs`);
      if (header.size !== listed.size) throw corrupt(`${name} holds ${header.size} bytes but the manifest says ${listed.size}`);
      if (target.keep?.has(relative)) {
        await drain(entry);
        return listed.size;
      }
      await restoreFileBytes(entry as AsyncIterable<Buffer>, listed, relative, place.absolute, target, ledger, where, signal);
      return listed.size;
    }
  }
}

/**
 * Write one file of the backup from its bytes (`source`, exactly the file's
 * data) to `absolute`: patched in place when the delta kept it with blocks
 * to write, else created (`wx`), verified against the manifest's size and
 * CRC32C either way. Shared by the tar extraction and a delta's ranged reads
 * (ranges.ts).
 */
export async function restoreFileBytes(
  source: AsyncIterable<Buffer>,
  listed: ManifestEntry,
  relative: string,
  absolute: string,
  target: ExtractTarget,
  ledger: PartLedger,
  where: string,
  signal?: AbortSignal,
): Promise<void> {
  const patch = target.patch?.get(relative);
  if (patch && !HELD_BACK.has(relative)) await patchFile(source, listed, patch, relative, absolute, target, ledger, where, signal);
  else await writeFile(source, listed, relative, absolute, target, ledger, where, signal);
}

/** Gathered before one write: fewer system calls, each still under the 1 MiB where a write() gets slow here (docs/performance.md). */
const WRITE_BATCH = 512 * 1024;

/**
 * Bring a file delta.ts kept in place to the backup's content, writing only
 * the blocks `patch` marks. It is not in the ledger's files: a failed
 * attempt leaves it for the retry, which writes the same blocks again.
 */
async function patchFile(
  entry: AsyncIterable<Buffer>,
  listed: ManifestEntry,
  patch: BlockPatch,
  relative: string,
  absolute: string,
  target: ExtractTarget,
  ledger: PartLedger,
  where: string,
  signal?: AbortSignal,
): Promise<void> {
  // delta.ts found a regular file here; never follow a link planted since.
  const fh = await fs.open(absolute, fsConstants.O_RDWR | fsConstants.O_NOFOLLOW);
  let handedOver = false;
  try {
    const written = await applyPatch(entry, fh, listed, patch, patchWhat(relative, target.backupName, where), signal);
    target.progress.add(written);
    ledger.bytes += written;
    const mode = restoredMode(listed.mode);
    const mtime = new Date(listed.mtime);
    if (target.finisher) {
      handedOver = true;
      await target.finisher.add(fh, mode, mtime);
    } else {
      await fh.chmod(mode);
      await fh.utimes(mtime, mtime);
      await fh.sync();
    }
  } finally {
    if (!handedOver) await fh.close();
  }
  target.progress.add(0, 1);
  ledger.count++;
}

async function writeFile(
  entry: AsyncIterable<Buffer>,
  listed: ManifestEntry,
  relative: string,
  absolute: string,
  target: ExtractTarget,
  ledger: PartLedger,
  where: string,
  signal?: AbortSignal,
): Promise<void> {
  const file = HELD_BACK.has(relative) ? absolute + HELD_BACK_SUFFIX : absolute;
  await target.dirs.ensure(path.dirname(file));
  // 'wx': the targets were empty, so an existing name (or a symbolic link
  // planted under it) means something is wrong; never follow or overwrite.
  const fh = await fs.open(file, 'wx', 0o600);
  ledger.files.push(file);
  let handedOver = false;
  try {
    // One loop instead of a chain of stream stages: each chunk is checked,
    // counted and written here, without a hop per stage.
    const verifier = new Verifier(
      { size: listed.size, crc32c: listed.crc32c ?? '' },
      `file ${quoteForMessage(relative, 200)} of backup ${target.backupName} (${where})`,
    );
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async () => {
      await writeAllv(fh, batch, batched);
      target.progress.add(batched);
      ledger.bytes += batched;
      batch = [];
      batched = 0;
    };
    // Read the entry through its async iterator: if the parser was destroyed
    // before this point, the entry ends early (and fails verification)
    // instead of waiting for events that were already emitted.
    for await (const chunk of entry) {
      signal?.throwIfAborted();
      verifier.update(chunk);
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH) await flush();
    }
    signal?.throwIfAborted();
    verifier.finish();
    if (batched > 0) await flush();
    const mode = restoredMode(listed.mode);
    const mtime = new Date(listed.mtime);
    if (target.finisher) {
      handedOver = true;
      await target.finisher.add(fh, mode, mtime);
    } else {
      await fh.chmod(mode);
      await fh.utimes(mtime, mtime);
      await fh.sync();
    }
  } finally {
    if (!handedOver) await fh.close();
  }
  target.progress.add(0, 1);
  ledger.count++;
}
