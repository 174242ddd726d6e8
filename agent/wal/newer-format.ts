/**
 * The warning for WAL newer than this gcwal knows, given once per pg_wal.
 * archive_command starts gcwal once per segment, so a warning per process
 * would fill the server log; a note file in pg_wal, `.gcwal-newer-wal-<magic>`,
 * records that it was given. PostgreSQL ignores files in pg_wal whose names
 * are not WAL file names.
 */
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { newerWalMagicWarning } from '../../core/wal/header.ts';

/** The note's name for one magic: a later release with yet another magic warns again. */
export function newerWalNoteName(magic: number): string {
  return `.gcwal-newer-wal-${magic.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Call `warn` with the newer-WAL warning unless this pg_wal (`walDir`) has
 * its note already; create the note. When the note cannot be written
 * (read-only, permissions) the warning is given every time, never lost.
 */
export async function warnNewerWalOnce(walDir: string, magic: number, warn: (message: string) => void): Promise<void> {
  const note = path.join(walDir, newerWalNoteName(magic));
  try {
    const handle = await open(note, 'wx', 0o600);
    await handle.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
  }
  warn(newerWalMagicWarning(magic));
}
