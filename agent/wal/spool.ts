/**
 * The prefetch spool on disk, `pg_wal/.gcwal-spool/` (format: agent/wal/README.md):
 * writing a verified segment so that it is complete or absent, serving one
 * to PostgreSQL by renaming it into place, and removing what no longer
 * applies. The records themselves are spool-entry.ts.
 */
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileChecksum } from '../../core/checksum/file.ts';
import { fsyncPath } from '../../core/fsync.ts';
import { randomToken } from '../../core/random-token.ts';
import { fileIdentity, sameFile, type FileIdentity } from './marker.ts';
import { ENTRY_SUFFIX, formatSpoolEntry, parseSpoolEntry, SPOOL_DIR, type SpoolEntry } from './spool-entry.ts';

/** The spool directory of the pg_wal directory `walDir`. */
export function spoolDir(walDir: string): string {
  return path.join(walDir, SPOOL_DIR);
}

/**
 * Which restore a spool belongs to: the identity of the data directory's
 * PG_VERSION. backup-fetch writes a new one for every restore, so a spool
 * left by an earlier restore into the same directory never matches.
 */
export async function recoveryIdentity(dataDir: string): Promise<FileIdentity | undefined> {
  return fileIdentity(path.join(dataDir, 'PG_VERSION')).catch(() => undefined);
}

/** Create the spool directory (0700); refuses one that is not a real directory (a symbolic link). */
export async function ensureSpoolDir(walDir: string): Promise<string> {
  const dir = spoolDir(walDir);
  await fs.mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  return dir;
}

/** What a spooled segment is, besides its content. */
export type SpoolSource = Omit<SpoolEntry, 'format' | 'file'>;

/**
 * Write `content` (a decoded stream that fails unless its size and CRC32C
 * match, see core/storage/decode.ts) into the spool as `source.name`: a
 * temporary name, fsync, rename, then the record beside it (also renamed
 * into place), so that a segment without its record, or a record without
 * its segment, is never served. On any failure nothing is left.
 */
export async function spoolSegment(walDir: string, content: Readable, source: SpoolSource, signal?: AbortSignal): Promise<SpoolEntry> {
  const dir = await ensureSpoolDir(walDir);
  const token = `${process.pid}.${randomToken(4)}`;
  const tmp = path.join(dir, `.${source.name}.${token}.tmp`);
  const tmpEntry = path.join(dir, `.${source.name}${ENTRY_SUFFIX}.${token}.tmp`);
  const final = path.join(dir, source.name);
  try {
    await pipeline(content, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal });
    await fsyncPath(tmp);
    await fs.rename(tmp, final);
    const file = await fileIdentity(final);
    if (!file) throw new Error(`${final} vanished as it was spooled`);
    const entry: SpoolEntry = { format: 1, ...source, file };
    await fs.writeFile(tmpEntry, formatSpoolEntry(entry), { flag: 'wx', mode: 0o600 });
    await fs.rename(tmpEntry, path.join(dir, `${source.name}${ENTRY_SUFFIX}`));
    return entry;
  } catch (err) {
    content.destroy();
    await Promise.all([tmp, tmpEntry, final].map((f) => fs.rm(f, { force: true }).catch(() => {})));
    throw err;
  }
}

/** Read and parse the record of `name`; undefined when absent or not a valid record for that name. */
export async function readSpoolEntry(walDir: string, name: string): Promise<SpoolEntry | undefined> {
  const text = await fs.readFile(path.join(spoolDir(walDir), `${name}${ENTRY_SUFFIX}`), 'utf8').catch(() => undefined);
  const entry = text === undefined ? undefined : parseSpoolEntry(text);
  return entry?.name === name ? entry : undefined;
}

/** Remove `name` and its record from the spool; failures ignored. */
export async function removeSpooled(walDir: string, name: string): Promise<void> {
  const dir = spoolDir(walDir);
  await Promise.all([name, `${name}${ENTRY_SUFFIX}`].map((f) => fs.rm(path.join(dir, f), { force: true }).catch(() => {})));
}

/** Why a spooled segment was not served. */
export type SpoolRefusal = 'absent' | 'no-record' | 'other-repository' | 'other-recovery' | 'changed' | 'damaged';

/**
 * Serve `name` from the spool into `dest` (restore_command's %p, in the same
 * pg_wal): only when its record vouches for this repository, this restore
 * (`recovery`, see recoveryIdentity) and the file as it is now, and its
 * content still has the size and CRC32C it was verified against. Then it is
 * renamed to `dest` and the directory fsynced. Anything else says why (and
 * removes a segment whose record refused it); the caller fetches it itself.
 */
export async function takeSpooled(
  walDir: string,
  name: string,
  dest: string,
  expect: { repo: string; recovery: FileIdentity },
): Promise<'served' | SpoolRefusal> {
  const file = path.join(spoolDir(walDir), name);
  const entry = await readSpoolEntry(walDir, name);
  const verdict = await (async (): Promise<'ok' | SpoolRefusal> => {
    const now = await fileIdentity(file).catch(() => undefined);
    if (!entry) return now ? 'no-record' : 'absent';
    if (entry.repo !== expect.repo) return 'other-repository';
    if (!sameFile(entry.recovery, expect.recovery)) return 'other-recovery';
    if (!now || !sameFile(now, entry.file)) return 'changed';
    const sum = await fileChecksum(file).catch(() => undefined);
    return sum?.size === entry.rawSize && sum.crc32c === entry.rawCrc32c ? 'ok' : 'damaged';
  })();
  if (verdict !== 'ok') {
    // A segment without its record may be one the prefetcher is finishing:
    // it is not served, and left for the prefetcher to complete or remove.
    if (verdict !== 'absent' && verdict !== 'no-record') await removeSpooled(walDir, name);
    return verdict;
  }
  await fs.rename(file, dest);
  await removeSpooled(walDir, name);
  await fsyncPath(path.dirname(dest));
  return 'served';
}

/** The spool's contents: segment names with a record, segment names without one, and other files. */
export async function listSpool(walDir: string): Promise<{ segments: Set<string>; entries: Set<string>; other: string[] }> {
  const names = await fs.readdir(spoolDir(walDir)).catch(() => [] as string[]);
  const segments = new Set<string>();
  const entries = new Set<string>();
  const other: string[] = [];
  for (const n of names) {
    if (/^[0-9A-F]{24}$/.test(n)) segments.add(n);
    else if (n.endsWith(ENTRY_SUFFIX) && /^[0-9A-F]{24}$/.test(n.slice(0, -ENTRY_SUFFIX.length))) entries.add(n.slice(0, -ENTRY_SUFFIX.length));
    else other.push(n);
  }
  return { segments, entries, other };
}

/**
 * Remove every spooled segment and record for which `keep` is false (with
 * no `keep`, all of them), and with `temporaries` the temporary files of
 * writes that never finished (only when no fetcher is writing). Files of
 * the fetcher's own (its pid file, the request) are left alone.
 */
export async function clearSpool(walDir: string, keep: (name: string) => boolean = () => false, temporaries = false): Promise<void> {
  const { segments, entries, other } = await listSpool(walDir);
  for (const name of new Set([...segments, ...entries])) if (!keep(name)) await removeSpooled(walDir, name);
  if (!temporaries) return;
  for (const n of other) if (n.endsWith('.tmp')) await fs.rm(path.join(spoolDir(walDir), n), { force: true }).catch(() => {});
}
