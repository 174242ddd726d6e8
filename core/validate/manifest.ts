/**
 * Reading a backup's manifest for validation without holding it: one pass
 * checks every line and notes, per part, how many entries it lists and where
 * its lines lie; each part's entries are then read again, alone, when that
 * part is checked. gcwal writes the manifest grouped by part, so with the
 * `none` codec each part's lines are one byte range read on its own; any
 * other layout still works (a range holding other parts' lines is filtered),
 * and a compressed manifest is read whole each time.
 */
import type { Readable } from 'node:stream';
import { checkManifestEntry } from '../backup/manifest.ts';
import { type BackupMeta, isIncremental, type ManifestEntry } from '../backup/meta.ts';
import { crc32c } from '../checksum/crc32c.ts';
import { CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import type { ObjectInfo, Storage } from '../storage/types.ts';
import { quoteForMessage } from '../wal/quote.ts';
import { openDecodedObject } from './decode.ts';
import { EntriesDigest } from './seal.ts';

/** Longest manifest line accepted (as restore): bounds memory on a damaged manifest. */
const MAX_LINE = 1024 * 1024;

const hint = 'the backup manifest is damaged; take a new backup';

/** One line and the bytes it spans in the decoded manifest (newline included). */
interface Line {
  text: string;
  number: number;
  start: number;
  end: number;
}

/** Split bytes into UTF-8 lines with their offsets; invalid UTF-8 or an overlong line is corruption. */
async function* lines(stream: AsyncIterable<Buffer>, where: string, base: number, firstNumber: number): AsyncGenerator<Line> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let rest: Buffer = Buffer.alloc(0);
  let offset = base;
  let number = firstNumber;
  const line = (bytes: Buffer, length: number): Line => {
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new CorruptObjectError(`${where}: line ${number} is not valid utf-8`, hint);
    }
    const result = { text, number, start: offset, end: offset + length };
    offset += length;
    number++;
    return result;
  };
  for await (const chunk of stream) {
    rest = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    let from = 0;
    for (let nl = rest.indexOf(0x0a, from); nl >= 0; nl = rest.indexOf(0x0a, from)) {
      yield line(rest.subarray(from, nl), nl + 1 - from);
      from = nl + 1;
    }
    rest = rest.subarray(from);
    if (rest.length > MAX_LINE) throw new CorruptObjectError(`${where}: line ${number} is longer than ${MAX_LINE} bytes`, hint);
  }
  if (rest.length > 0) yield line(rest, rest.length);
}

function parseLine(line: Line, meta: BackupMeta, where: string): ManifestEntry | undefined {
  if (line.text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line.text);
  } catch {
    throw new CorruptObjectError(`${where}: line ${line.number} is not valid json`, hint);
  }
  return checkManifestEntry(value, meta.parts.length, `${where}, line ${line.number}`, { refs: isIncremental(meta) });
}

/** What one part of the manifest lists, and where. */
export interface PartListing {
  entries: number;
  files: number;
  /** first byte of its first line and end of its last (start > end: none) */
  start: number;
  end: number;
  firstLine: number;
  /** its entries' digest (seal.ts), when the survey was asked for digests */
  digest?: EntriesDigest;
}

/** What the first pass learnt. */
export interface ManifestSurvey {
  /** the manifest object, with a codec (`none` when its metadata names none, as restore reads it) */
  info: ObjectInfo;
  entries: number;
  files: number;
  fileBytes: number;
  /** by part index */
  parts: PartListing[];
  /** path hashes met more than once: paths that may repeat, confirmed by findRepeatedPath */
  suspects: Set<number>;
}

/** 53 bits of hash of a path (CRC32C and 21 bits of FNV-1a): a candidate filter for repeats, exact only with findRepeatedPath. */
export function pathHash(path: string): number {
  let fnv = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) fnv = Math.imul(fnv ^ path.charCodeAt(i), 0x01000193);
  return crc32c(Buffer.from(path)) * 0x200000 + (fnv & 0x1fffff);
}

/** A growable list of numbers (8 bytes each), sorted at the end to find repeats. */
class HashList {
  #values = new Float64Array(1024);
  #length = 0;

  push(value: number): void {
    if (this.#length === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#length++] = value;
  }

  repeated(): Set<number> {
    const sorted = this.#values.subarray(0, this.#length).sort();
    const out = new Set<number>();
    for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) out.add(sorted[i]);
    this.#values = new Float64Array(0);
    return out;
  }
}

/**
 * The manifest object of `meta` with a codec to decode it by; `info` is its
 * stat. Throws CorruptObjectError when its size or CRC32C differ from the
 * metadata's record.
 */
export function manifestObject(info: ObjectInfo, meta: BackupMeta, where: string): ObjectInfo {
  if (info.size !== meta.manifest.storedSize || info.crc32c !== meta.manifest.storedCrc32c) {
    throw new CorruptObjectError(
      `${where} is ${info.size} bytes with crc32c ${info.crc32c}, but backup.json records ${meta.manifest.storedSize} bytes with crc32c ${meta.manifest.storedCrc32c}`,
      hint,
    );
  }
  return info.metadata[Meta.codec] ? info : { ...info, metadata: { ...info.metadata, [Meta.codec]: 'none' } };
}

/**
 * First pass: read the whole manifest (`info` from manifestObject), check
 * every line as restore does, and count entries, files and bytes overall and
 * per part (and, with `digests`, each part's EntriesDigest: 32 bytes a
 * part). Throws CorruptObjectError for a damaged manifest.
 */
export async function surveyManifest(
  storage: Storage,
  info: ObjectInfo,
  meta: BackupMeta,
  where: string,
  signal?: AbortSignal,
  digests = false,
): Promise<ManifestSurvey> {
  const parts: PartListing[] = meta.parts.map(() => ({
    entries: 0,
    files: 0,
    start: Number.POSITIVE_INFINITY,
    end: 0,
    firstLine: 0,
    ...(digests ? { digest: new EntriesDigest() } : {}),
  }));
  const hashes = new HashList();
  const survey: ManifestSurvey = { info, entries: 0, files: 0, fileBytes: 0, parts, suspects: new Set() };
  const decoded = await openDecodedObject(storage, info, signal);
  try {
    for await (const line of lines(decoded as AsyncIterable<Buffer>, where, 0, 1)) {
      const entry = parseLine(line, meta, where);
      if (!entry) continue;
      survey.entries++;
      hashes.push(pathHash(entry.path));
      // A file an incremental backup refers to is stored (and counted) in the backup holding it.
      if (entry.type === 'file' && entry.ref === undefined) {
        survey.files++;
        survey.fileBytes += entry.size;
      }
      if (entry.part === undefined) continue;
      if (!Number.isSafeInteger(entry.part) || entry.part < 0 || entry.part >= parts.length) {
        throw new CorruptObjectError(`${where}, line ${line.number}: ${entry.path} names part ${entry.part}, which does not exist`, hint);
      }
      const part = parts[entry.part];
      part.entries++;
      if (entry.type === 'file') part.files++;
      part.digest?.add(entry);
      if (line.start < part.start) {
        part.start = line.start;
        part.firstLine = line.number;
      }
      part.end = line.end;
    }
  } finally {
    decoded.destroy();
  }
  survey.suspects = hashes.repeated();
  return survey;
}

/** Read the lines `listing` spans (or the whole manifest when it is compressed). */
async function* linesOf(storage: Storage, survey: ManifestSurvey, listing: PartListing, where: string, signal?: AbortSignal): AsyncGenerator<Line> {
  if (survey.info.metadata[Meta.codec] === 'none') {
    // Checked whole by the first pass; every line read here is parsed and checked again.
    const stream = await storage.read(survey.info.key, { start: listing.start, end: listing.end - 1, signal });
    try {
      yield* lines(stream as AsyncIterable<Buffer>, where, listing.start, listing.firstLine);
    } finally {
      stream.destroy();
    }
    return;
  }
  const decoded: Readable = await openDecodedObject(storage, survey.info, signal);
  try {
    yield* lines(decoded as AsyncIterable<Buffer>, where, 0, 1);
  } finally {
    decoded.destroy();
  }
}

/** The manifest's entries for part `index`, read on their own (second pass). */
export async function* entriesOfPart(
  storage: Storage,
  survey: ManifestSurvey,
  meta: BackupMeta,
  index: number,
  where: string,
  signal?: AbortSignal,
): AsyncGenerator<ManifestEntry> {
  const listing = survey.parts[index];
  if (listing.entries === 0) return;
  for await (const line of linesOf(storage, survey, listing, where, signal)) {
    const entry = parseLine(line, meta, where);
    if (entry?.part === index) yield entry;
  }
}

/**
 * Confirm the first pass's suspects: the first path the manifest lists
 * twice, or undefined when the repeats were only hash collisions. Holds just
 * the paths whose hash is a suspect.
 */
export async function findRepeatedPath(
  storage: Storage,
  survey: ManifestSurvey,
  meta: BackupMeta,
  where: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  if (survey.suspects.size === 0) return undefined;
  const seen = new Set<string>();
  const whole: PartListing = { entries: survey.entries, files: survey.files, start: 0, end: survey.info.size, firstLine: 1 };
  for await (const line of linesOf(storage, survey, whole, where, signal)) {
    const entry = parseLine(line, meta, where);
    if (!entry || !survey.suspects.has(pathHash(entry.path))) continue;
    if (seen.has(entry.path)) return entry.path;
    seen.add(entry.path);
  }
  return undefined;
}

/** A repeated path as corruption. */
export function repeatedPathError(path: string, where: string): CorruptObjectError {
  return new CorruptObjectError(`${where} lists ${quoteForMessage(path, 200)} twice`, hint);
}
