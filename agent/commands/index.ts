import type { CommandTable } from './table.ts';

/**
 * Every command, loaded on demand so `wal-push` does not pay for the
 * modules of `backup-push` at start-up (archive_command runs once per segment).
 */
export const COMMANDS: CommandTable = {
  'repo-create': {
    summary: 'create the repository for this cluster (once, before archiving)',
    load: async () => (await import('./repo-create.ts')).repoCreate,
  },
  'wal-push': { summary: 'archive one WAL file (archive_command)', load: async () => (await import('./wal-push.ts')).walPush },
  'wal-fetch': { summary: 'restore one WAL file (restore_command)', load: async () => (await import('./wal-fetch.ts')).walFetch },
  'wal-prefetch': {
    summary: 'the background WAL prefetcher wal-fetch starts during recovery (internal)',
    load: async () => (await import('./wal-prefetch.ts')).walPrefetch,
  },
  'wal-archiver': {
    summary: 'the background WAL archiver wal-push starts in asynchronous mode (internal)',
    load: async () => (await import('./wal-archiver.ts')).walArchiver,
  },
  'archiver-status': {
    summary: 'the asynchronous archiver of a data directory: queue, lag, last error',
    load: async () => (await import('./archiver-status.ts')).archiverStatus,
  },
  'backup-push': { summary: 'take a base backup of a running cluster', load: async () => (await import('./backup-push.ts')).backupPush },
  'backup-fetch': { summary: 'restore a base backup and set up point-in-time recovery', load: async () => (await import('./backup-fetch.ts')).backupFetch },
  local: { summary: 'run a local GCS emulator, metadata server and pipeline for development', load: async () => (await import('./local.ts')).local },
  'backup-list': { summary: 'list the backups in the repository', load: async () => (await import('./backup-list.ts')).backupList },
  status: { summary: 'what can be restored to which point, the newest WAL, backups and open alerts', load: async () => (await import('./status.ts')).status },
  delete: { summary: 'apply a retention policy: a dry run unless --confirm', load: async () => (await import('./delete.ts')).deleteCommand },
};
