/**
 * "Pushed ahead" markers: when wal-push archives a segment PostgreSQL has not
 * asked for yet (see ahead.ts), it leaves a marker in a private directory of
 * pg_wal, `pg_wal/.gcwal-pushed/<name>`, written only after the object is
 * durable. When PostgreSQL then runs archive_command for that segment, the
 * marker answers at once: no file read, no repository round trip, not even
 * the repository's client library loaded. pgBackRest's asynchronous archiving
 * answers from its spool's status files the same way.
 *
 * A marker is trusted only for the same repository URL and the same local
 * file (device, inode, size and modification time as when it was pushed): a
 * segment PostgreSQL has marked ready is never modified, so an unchanged file
 * has the content that was archived. Anything else makes the marker stale:
 * it is removed and the segment is pushed normally (which is idempotent).
 * PostgreSQL's own archive_status directory is only ever read.
 *
 * A marker file is two lines. The first is the same check as one line of
 * text, `gcwal-marker 1 <name> <dev> <ino> <size> <mtime> <repo>`, with the
 * numbers in decimal and the mtime as GNU `stat -c %.9Y` prints it
 * (seconds.nanoseconds): the sh launcher (agent/wal/launcher.sh) rebuilds it
 * with `stat` and $GCWAL_REPO and answers the call without starting Node
 * when the two are equal. It never writes, so a marker it answered from
 * stays until the next wal-push prunes it. The second line is the JSON
 * record this module reads; a marker whose two lines disagree is no marker.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** Name of the marker directory inside pg_wal. */
export const MARKER_DIR = '.gcwal-pushed';

/** Which local file a marker vouches for: decimal strings, since inode numbers may exceed 2^53. */
export interface FileIdentity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
}

/** One marker's content. */
export interface PushedMarker {
  format: 1;
  /** the repository URL the object was archived to */
  repo: string;
  /** the pg_wal file name */
  name: string;
  /** the archived object's key, raw size and raw CRC32C (base64), for the log */
  key: string;
  rawSize: number;
  rawCrc32c: string;
  file: FileIdentity;
}

/** The identity of the file at `filePath` now, or undefined when it does not exist. */
export async function fileIdentity(filePath: string): Promise<FileIdentity | undefined> {
  try {
    const st = await fs.stat(filePath, { bigint: true });
    if (!st.isFile()) return undefined;
    return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Whether two identities name the same unchanged file. */
export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const NS_PER_S = 1_000_000_000n;

/**
 * The line the sh launcher compares with its own: `gcwal-marker 1 <name>
 * <dev> <ino> <size> <seconds>.<9-digit nanoseconds> <repo>`, byte for byte
 * what it builds from `stat -L -c '%d %i %s %.9Y'` (st_dev in decimal, as
 * Node's bigint stat gives it) and $GCWAL_REPO. Undefined when the shell
 * could never produce it: a repository URL with a control character (a
 * newline would split the line), a time before 1970 (stat prints those
 * differently), a field that is not a plain decimal number.
 */
export function shellLine(marker: PushedMarker): string | undefined {
  const { name, repo, file } = marker;
  if (/[\x00-\x1f\x7f]/.test(repo) || /[\x00-\x20\x7f]/.test(name)) return undefined;
  if (![file.dev, file.ino, file.size, file.mtimeNs].every((n) => DECIMAL.test(n))) return undefined;
  const ns = BigInt(file.mtimeNs);
  const mtime = `${ns / NS_PER_S}.${String(ns % NS_PER_S).padStart(9, '0')}`;
  return `gcwal-marker 1 ${name} ${file.dev} ${file.ino} ${file.size} ${mtime} ${repo}`;
}

/** Serialise a marker: the shell's line (empty when it has none), then one JSON line. */
export function formatMarker(marker: PushedMarker): string {
  return `${shellLine(marker) ?? ''}\n${JSON.stringify(marker)}\n`;
}

/**
 * Parse a marker; undefined for anything that is not a complete marker of
 * this format, including one whose first line is not exactly the shell line
 * of its JSON (so the launcher and Node never trust different markers).
 */
export function parseMarker(text: string): PushedMarker | undefined {
  const newline = text.indexOf('\n');
  if (newline < 0 || !text.endsWith('\n')) return undefined;
  let value: Partial<PushedMarker>;
  try {
    value = JSON.parse(text.slice(newline + 1)) as Partial<PushedMarker>;
  } catch {
    return undefined;
  }
  const file = value?.file as Partial<FileIdentity> | undefined;
  const strings = [value?.repo, value?.name, value?.key, value?.rawCrc32c, file?.dev, file?.ino, file?.size, file?.mtimeNs];
  if (value?.format !== 1 || typeof value.rawSize !== 'number' || strings.some((s) => typeof s !== 'string')) return undefined;
  if (text.slice(0, newline) !== (shellLine(value as PushedMarker) ?? '')) return undefined;
  return value as PushedMarker;
}

/**
 * Record that `marker.name` of the pg_wal directory `walDir` is durably
 * archived. Written to a temporary name and renamed, so a reader never sees
 * half a marker; not fsynced, since a lost marker only means the segment is
 * pushed again and found already archived. The directory is created 0700.
 */
export async function writeMarker(walDir: string, marker: PushedMarker): Promise<void> {
  const dir = path.join(walDir, MARKER_DIR);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // Unique enough with 'wx' (exclusive create); node:crypto is not worth its
  // load time on archive_command's start-up path for a temporary name.
  const tmp = path.join(dir, `.${marker.name}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`);
  try {
    await fs.writeFile(tmp, formatMarker(marker), { mode: 0o600, flag: 'wx' });
    await fs.rename(tmp, path.join(dir, marker.name));
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/**
 * Consume the marker for `name` in `walDir`, if any: it is removed either
 * way, and returned only when it vouches for this repository and for the
 * file as it is now (`filePath`). Read failures count as no marker.
 */
export async function takeMarker(walDir: string, name: string, repo: string, filePath: string): Promise<PushedMarker | undefined> {
  const markerPath = path.join(walDir, MARKER_DIR, name);
  let text: string;
  try {
    text = await fs.readFile(markerPath, 'utf8');
  } catch {
    return undefined;
  }
  await fs.rm(markerPath, { force: true }).catch(() => {});
  const marker = parseMarker(text);
  if (!marker || marker.name !== name || marker.repo !== repo) return undefined;
  const now = await fileIdentity(filePath).catch(() => undefined);
  return now && sameFile(now, marker.file) ? marker : undefined;
}

/**
 * Whether a marker for `name` in `walDir` vouches for this repository and
 * the file at `filePath` as it is now, leaving it in place (the background
 * archiver's check of what it has already archived).
 */
export async function hasValidMarker(walDir: string, name: string, repo: string, filePath: string): Promise<boolean> {
  const text = await fs.readFile(path.join(walDir, MARKER_DIR, name), 'utf8').catch(() => undefined);
  const marker = text === undefined ? undefined : parseMarker(text);
  if (!marker || marker.name !== name || marker.repo !== repo) return false;
  const now = await fileIdentity(filePath).catch(() => undefined);
  return now !== undefined && sameFile(now, marker.file);
}

/**
 * Remove markers whose segment PostgreSQL will not ask about any more (not
 * `.ready` in archive_status), so markers left by an interrupted run, and
 * those the sh launcher answered from (it never removes one), cannot pile
 * up. `ready` holds the names still waiting. Failures are ignored.
 */
export async function pruneMarkers(walDir: string, ready: ReadonlySet<string>): Promise<void> {
  const dir = path.join(walDir, MARKER_DIR);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (ready.has(name)) continue;
    // A temporary file may be a marker being written right now (the
    // background archiver prunes while it pushes): removed only when old.
    if (name.startsWith('.')) {
      const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < TEMPORARY_MAX_AGE_MS) continue;
    }
    await fs.rm(path.join(dir, name), { force: true }).catch(() => {});
  }
}

/** A marker's temporary file older than this was left by a process that died. */
const TEMPORARY_MAX_AGE_MS = 60_000;
