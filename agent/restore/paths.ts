/**
 * Where each path of a backup lands on disk. Backup paths are untrusted (a
 * damaged or malicious part must not write outside the restore targets), so
 * every path is validated before it is joined to a directory.
 */
import * as path from 'node:path';
import { CorruptObjectError } from '../../core/errors.ts';
import { quoteForMessage } from '../../core/wal/quote.ts';

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
      throw new CorruptObjectError(
        `${where} holds ${quoteForMessage(relative)} under pg_tblspc, but ${quoteForMessage(oid)} is not a tablespace of the backup`,
        'the backup is damaged; restore another backup',
      );
    }
    if (parts.length === 2) return { absolute: path.join(dest, relative), tablespaceLink: oid };
    return { absolute: path.join(target, ...parts.slice(2)) };
  }
  return { absolute: path.join(dest, ...parts) };
}
