import type { WalkEntry } from './walk.ts';

/** One tar part to build: which entries, in order. */
export interface PlannedPart {
  /** 0-based; the part's object key comes from it */
  index: number;
  entries: WalkEntry[];
  /** estimated raw tar bytes (headers, data, padding) at walk time */
  bytes: number;
  /** regular files in the part */
  files: number;
  /**
   * built only after every other part is complete (the control file, as
   * pg_basebackup sends it after everything else)
   */
  last: boolean;
}

const BLOCK = 512;

/**
 * Bytes an entry takes in a tar stream: a 512-byte header, plus the data
 * rounded up to 512 for files. Symlinks (tablespace links) are not written
 * to the tar. Long names needing a pax header are not counted: the size is
 * an estimate for splitting.
 */
export function tarBytes(entry: WalkEntry): number {
  if (entry.type === 'symlink') return 0;
  if (entry.type === 'directory') return BLOCK;
  return BLOCK + Math.ceil(entry.size / BLOCK) * BLOCK;
}

/**
 * Split the walk's entries into parts of about `partSize` raw bytes, keeping
 * their order: a new part starts at an entry boundary once the current one
 * has reached partSize (so one huge file makes one big part), and a file of
 * partSize or more is alone in its part: a delta restore (backup-fetch
 * --delta) does not read a part whose files are all unchanged, so a big
 * relation file that did not change costs nothing there. Entries whose
 * path is in `lastPaths` go, in that order, to a final part of their own that
 * the writer builds after all the others. Symlink entries are manifest-only
 * and are not placed in any part. Pure.
 */
export function planParts(entries: readonly WalkEntry[], partSize: number, lastPaths: readonly string[] = []): PlannedPart[] {
  if (!(partSize > 0)) throw new RangeError(`part size must be positive, not ${partSize}`);
  const parts: PlannedPart[] = [];
  const deferred: WalkEntry[] = [];
  let current: PlannedPart | undefined;
  for (const entry of entries) {
    if (entry.type === 'symlink') continue;
    if (lastPaths.includes(entry.path)) {
      deferred.push(entry);
      continue;
    }
    const alone = entry.type === 'file' && tarBytes(entry) >= partSize;
    if (!current || current.bytes >= partSize || (alone && current.entries.length > 0)) {
      current = { index: parts.length, entries: [], bytes: 0, files: 0, last: false };
      parts.push(current);
    }
    current.entries.push(entry);
    current.bytes += tarBytes(entry);
    if (entry.type === 'file') current.files++;
  }
  if (deferred.length > 0) {
    deferred.sort((a, b) => lastPaths.indexOf(a.path) - lastPaths.indexOf(b.path));
    parts.push({
      index: parts.length,
      entries: deferred,
      bytes: deferred.reduce((n, e) => n + tarBytes(e), 0),
      files: deferred.filter((e) => e.type === 'file').length,
      last: true,
    });
  }
  return parts;
}
