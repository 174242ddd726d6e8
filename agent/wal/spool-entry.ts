/**
 * The record of one prefetched segment in the spool (see agent/wal/README.md,
 * "The prefetch spool"): pure formatting and parsing, shared by the fetcher
 * that writes records and by wal-fetch that serves from them; the sh
 * launcher (agent/wal/launcher.sh) rebuilds the first line itself.
 *
 * A record is two lines. The first is the check as one line of text:
 *
 *   gcwal-spool 1 <name> <dev> <ino> <size> <mtime> <rdev> <rino> <rsize> <rmtime> <repo>
 *
 * `<dev> <ino> <size> <mtime>` are the spooled file's, `<rdev> <rino> <rsize>
 * <rmtime>` the data directory's PG_VERSION's (the recovery the file was
 * fetched for), each as GNU `stat -L -c '%d %i %s %.9Y'` prints them, and
 * `<repo>` is the repository URL. The second line is this module's JSON
 * record; a record whose two lines disagree is no record.
 */
import type { FileIdentity } from './marker.ts';

/** The spool's directory inside pg_wal. */
export const SPOOL_DIR = '.gcwal-spool';

/** Suffix of a record beside its segment: `<name>.entry`. */
export const ENTRY_SUFFIX = '.entry';

/** One spooled segment's record. */
export interface SpoolEntry {
  format: 1;
  /** the segment's name (24 hex digits) */
  name: string;
  /** the repository URL it was fetched from */
  repo: string;
  /** the data directory's PG_VERSION when it was fetched: which restore it belongs to */
  recovery: FileIdentity;
  /** the spooled file as written, fsynced and renamed into the spool */
  file: FileIdentity;
  /** the object it was decoded from: key, generation, and the raw size and CRC32C (base64) it was verified against */
  key: string;
  generation: string;
  rawSize: number;
  rawCrc32c: string;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const NS_PER_S = 1_000_000_000n;

/**
 * `<dev> <ino> <size> <seconds>.<9-digit nanoseconds>`, byte for byte what
 * `stat -L -c '%d %i %s %.9Y'` prints for the file; undefined for a field
 * the shell could not print so (not a plain decimal, a time before 1970).
 */
export function statFields(file: FileIdentity): string | undefined {
  if (![file.dev, file.ino, file.size, file.mtimeNs].every((n) => DECIMAL.test(n))) return undefined;
  const ns = BigInt(file.mtimeNs);
  return `${file.dev} ${file.ino} ${file.size} ${ns / NS_PER_S}.${String(ns % NS_PER_S).padStart(9, '0')}`;
}

/** The line the launcher compares with its own; undefined when the shell could never produce it. */
export function spoolShellLine(entry: SpoolEntry): string | undefined {
  if (!/^[0-9A-F]{24}$/.test(entry.name) || /[\x00-\x1f\x7f]/.test(entry.repo)) return undefined;
  const file = statFields(entry.file);
  const recovery = statFields(entry.recovery);
  if (file === undefined || recovery === undefined) return undefined;
  return `gcwal-spool 1 ${entry.name} ${file} ${recovery} ${entry.repo}`;
}

/** Serialise a record: the shell's line (empty when it has none), then one JSON line. */
export function formatSpoolEntry(entry: SpoolEntry): string {
  return `${spoolShellLine(entry) ?? ''}\n${JSON.stringify(entry)}\n`;
}

function isIdentity(value: unknown): value is FileIdentity {
  const v = value as Partial<FileIdentity> | undefined;
  return typeof v === 'object' && v !== null && [v.dev, v.ino, v.size, v.mtimeNs].every((s) => typeof s === 'string');
}

/**
 * Parse a record; undefined for anything that is not a complete record of
 * this format, including one whose first line is not exactly the shell line
 * of its JSON (so the launcher and Node never trust different records).
 */
export function parseSpoolEntry(text: string): SpoolEntry | undefined {
  const newline = text.indexOf('\n');
  if (newline < 0 || !text.endsWith('\n')) return undefined;
  let value: Partial<SpoolEntry>;
  try {
    value = JSON.parse(text.slice(newline + 1)) as Partial<SpoolEntry>;
  } catch {
    return undefined;
  }
  if (value?.format !== 1 || typeof value.rawSize !== 'number' || !isIdentity(value.file) || !isIdentity(value.recovery)) return undefined;
  if ([value.name, value.repo, value.key, value.generation, value.rawCrc32c].some((s) => typeof s !== 'string')) return undefined;
  if (text.slice(0, newline) !== (spoolShellLine(value as SpoolEntry) ?? '')) return undefined;
  return value as SpoolEntry;
}
