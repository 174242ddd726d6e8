import { backupSummary, listBackups } from '../../core/backup/list.ts';
import type { BackupMeta } from '../../core/backup/meta.ts';
import { ExitCode } from '../../core/errors.ts';
import { formatBytes } from '../progress.ts';
import type { Command } from './types.ts';
import { requireRepositoryIdentity } from '../../core/repository.ts';

/** `2024-05-01T12:34:56.789Z` → `2024-05-01 12:34:56Z`: readable and still unambiguous. */
function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Left-aligned text columns separated by two spaces, header first. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

/** The human table of backup-list, oldest first; a PARENT column once a backup is incremental. */
export function backupTable(backups: readonly BackupMeta[]): string {
  const chains = backups.some((b) => b.parent !== undefined);
  const header = ['NAME', 'START TIME', 'TIMELINE', 'START LSN', 'RAW SIZE', 'STORED SIZE', 'PG', ...(chains ? ['PARENT'] : [])];
  const rows = backups.map((b) => [
    b.name,
    shortTime(b.startTime),
    String(b.timeline),
    b.startLsn,
    formatBytes(b.rawSize),
    formatBytes(b.storedSize),
    b.pgVersion,
    ...(chains ? [b.parent ?? '-'] : []),
  ]);
  return formatTable([header, ...rows]);
}

/** `gcwal backup-list [--json]`. */
export const backupList: Command = {
  name: 'backup-list',
  summary: 'list the backups in the repository',
  usage: 'gcwal backup-list [--json]',
  details: `
Lists the complete backups (those with backup.json), oldest first. A backup
still running or one that failed is not listed. The last one is what
backup-fetch LATEST restores.

--json prints a JSON array with one object per backup and these fields, a
stable interface for scripts: name, startTime, stopTime (ISO 8601 UTC),
timeline, startLsn, stopLsn (as PostgreSQL prints LSNs), startWalSegment,
stopWalSegment (the first and last WAL files the backup needs), rawSize,
storedSize (bytes), fileCount, pgVersion, systemIdentifier (a decimal
string); an incremental backup also has parent and full (the backup it
holds the changes since, and the full backup of its chain), and its rawSize,
storedSize and fileCount count only what it stores itself. An empty
repository prints []. The table shows a PARENT column once a backup is
incremental.`,
  options: {
    json: { type: 'boolean', description: 'print a JSON array instead of a table' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    const storage = await ctx.storage();
    // An empty list is an answer only for a repository that exists.
    await requireRepositoryIdentity(storage, { signal: ctx.signal });
    const backups = await listBackups(storage, ctx.signal, {
      onInvalid: (name, err) => ctx.log.warn(`skipping backup ${name}: ${err.message}`, { hint: err.hint }),
    });
    if (options.json) {
      ctx.stdout.write(JSON.stringify(backups.map(backupSummary), null, 2) + '\n');
    } else if (backups.length === 0) {
      ctx.stdout.write(`no backups in ${storage.url}; run gcwal backup-push to take one\n`);
    } else {
      ctx.stdout.write(backupTable(backups));
    }
    return ExitCode.ok;
  },
};
