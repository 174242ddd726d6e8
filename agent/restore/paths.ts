/**
 * Where each path of a backup lands on disk. Backup paths are untrusted (a
 * damaged or malicious part must not write outside the restore targets), so
 * every path is validated before it is joined to a directory.
 */
import * as path from 'node:path';
import { CorruptObjectError } from '../../core/errors.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';

/**
 * Check a data-directory-relative path from a manifest or a tar header and
 * return it without a trailing slash. Throws CorruptObjectError (naming
 * `where`) for empty, absolute, `.`/`..` or empty components, and NUL bytes.
 */
export function checkBackupPath(name: string, where: string): string {
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  const bad = (why: string) => new CorruptObjectError(`${where} holds an unsafe path ${quoteForMessage(name)}: ${why}`, 'the backup is damaged or was not written by gcwal; restore another backup');
  if (trimmed === '') throw bad('empty');
  if (trimmed.includes('\0')) throw bad('contains a NUL byte');
  if (trimmed.startsWith('/')) throw bad('absolute');
  for (const part of trimmed.split('/')) {
    if (part === '..') throw bad('goes up with ..');
    if (part === '' || part === '.') throw bad('has an empty or . component');
  }
  return trimmed;
}

/** Where one backup path goes. */
export interface Placement {
  /** absolute path on disk */
  absolute: string;
  /** the path is `pg_tblspc/<oid>` itself: the link restore creates, not content */
  tablespaceLink?: string;
}

/**
 * Map a checked backup path to disk: `pg_tblspc/<oid>/rest` goes to
 * `<tablespace target>/rest`, everything else under `dest`. `tablespaces`
 * maps OID → absolute target directory. Throws CorruptObjectError for a path
 * under pg_tblspc whose OID is not a tablespace of the backup.
 */
export function placeBackupPath(relative: string, dest: string, tablespaces: ReadonlyMap<string, string>, where: string): Placement {
  const parts = relative.split('/');
  if (parts[0] === 'pg_tblspc' && parts.length >= 2) {
    const oid = parts[1];
    const target = tablespaces.get(oid);
    if (target === undefined) {
      throw new CorruptObjectError(`${where} holds ${quoteForMessage(relative)} under pg_tblspc, but ${quoteForMessage(oid)} is not a tablespace of the backup`, 'the backup is damaged; restore another backup');
    }
    if (parts.length === 2) return { absolute: path.join(dest, relative), tablespaceLink: oid };
    return { absolute: path.join(target, ...parts.slice(2)) };
  }
  return { absolute: path.join(dest, ...parts) };
}
