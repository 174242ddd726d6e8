import * as path from 'node:path';
import { ExitCode, UsageError } from '../../core/errors.ts';
import { pushBackup } from '../backup/push.ts';
import { createProgress, formatBytes, formatDuration } from '../progress.ts';
import { VERSION } from '../version.ts';
import type { Command } from './types.ts';

/** `gcwal backup-push <pgdata>`: a base backup of the running cluster. */
export const backupPush: Command = {
  name: 'backup-push',
  summary: 'take a base backup of a running cluster',
  usage: 'gcwal backup-push [--full | --incremental] [--no-archive-check] <pgdata>',
  details: `
Takes a base backup of the running server whose data directory is <pgdata>,
with PostgreSQL's non-exclusive backup API (pg_backup_start/pg_backup_stop)
on one connection (PGHOST, PGPORT, PGUSER, PGDATABASE; a superuser or a role
allowed to run the backup functions). Run it on the database host as the
postgres OS user: the files are read directly from <pgdata>.

The data directory is stored as compressed tar parts of about GCWAL_PART_SIZE
raw bytes, GCWAL_CONCURRENCY at a time, then manifest.jsonl and, last,
backup.json; the backup is visible to backup-list and backup-fetch only once
backup.json exists. Left out, as pg_basebackup does: the contents of pg_wal,
pg_replslot, pg_stat_tmp, pg_dynshmem, pg_notify, pg_serial, pg_snapshots
and pg_subtrans (the directories are kept), postmaster.pid/.opts,
pg_internal.init, old backup_label/tablespace_map/backup_manifest,
pgsql_tmp*, temporary relations and unlogged relations' data (their init
forks are kept); also, as pgBackRest does, standby.signal and
recovery.signal (a restore writes its own recovery setup). Tablespaces are
followed and stored under pg_tblspc/<oid>/.

The backup is recorded only once the WAL from its start to its stop segment
is in the repository, so archive_command must be working (gcwal wal-push into
the same repository). After pg_backup_stop, which ends backup mode, it polls
the repository and fails with exit 14, naming what pg_stat_archiver reports,
when none of the missing WAL arrived for GCWAL_ARCHIVE_TIMEOUT seconds
(default 60). A primary with archive_mode = off is refused with exit 14
before the backup starts. --no-archive-check skips both checks (with a
warning), for WAL kept by other means.

On a hot standby the backup is taken from the standby's data directory (run
it there, connected to the standby) and restores like any other. The WAL is
archived by the primary, or by the standby with archive_mode = always; a
standby cannot switch segments, so the segment the backup stops in arrives
only once the primary leaves it. GCWAL_PRIMARY_CONNINFO (a libpq connection
string of the primary, e.g. 'host=db1 user=postgres dbname=postgres', the
password in ~/.pgpass) makes backup-push check the primary before the
backup starts (a primary of the same cluster, allowed to run
pg_switch_wal()) and switch its WAL segment once the backup stops; without
it the wait lasts until the primary switches by itself (archive_timeout).

--incremental stores only what changed since a parent: the newest backup
of the same cluster, major version and timeline lineage (a backup of an
earlier timeline qualifies when the server's history file says this
timeline branched off after it stopped). Any supported version, file level:
a file whose size and modification time are those the parent recorded,
that time a whole second before the parent started, is not read again (the
manifest names the backup holding it); every other file is stored whole.
backup-fetch rebuilds it from its chain (the full backup and the
incrementals up to it), so every backup of the chain must stay. Without a
parent it is refused with exit 2 (code no_parent_backup). --full, the
default, stores everything.

Prints the backup's name on stdout. The repository must exist (gcwal
repo-create): one without gcwal.json exits 13. On failure the server's backup mode is
ended and no backup.json is written (uploaded parts stay, invisible).`,
  options: {
    full: { type: 'boolean', description: 'store every file (the default)' },
    incremental: { type: 'boolean', description: 'store only the files changed since the newest backup of the lineage (see above)' },
    'no-archive-check': { type: 'boolean', description: 'do not refuse archive_mode = off nor wait for the WAL to reach the repository (warns)' },
  },
  positionals: 1,
  async run(ctx, [pgdata], options) {
    if (options.full === true && options.incremental === true)
      throw new UsageError('--full and --incremental exclude each other', 'pass one of them (--full is the default)');
    const storage = await ctx.storage();
    const started = Date.now();
    const meta = await pushBackup({
      pgdata: path.resolve(ctx.cwd, pgdata),
      storage,
      config: ctx.config,
      log: ctx.log,
      signal: ctx.signal,
      version: VERSION,
      progress: (label, totalBytes, totalFiles) => createProgress({ out: ctx.stderr, interactive: ctx.interactive, label, totalBytes, totalFiles }),
      archiveCheck: options['no-archive-check'] === true ? false : { timeoutSeconds: ctx.config.archiveTimeout },
      primary: ctx.config.primary,
      incremental: options.incremental === true,
    });
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? meta.rawSize / seconds : 0;
    ctx.log.info(
      `backup ${meta.name} done: ${formatBytes(meta.rawSize)} raw, ${formatBytes(meta.storedSize)} stored, ${meta.fileCount} files in ${formatDuration(seconds)} (${(rate / 1e6).toFixed(1)} MB/s)`,
      {
        name: meta.name,
        rawSize: meta.rawSize,
        storedSize: meta.storedSize,
        files: meta.fileCount,
        seconds: Math.round(seconds * 10) / 10,
        startLsn: meta.startLsn,
        stopLsn: meta.stopLsn,
      },
    );
    ctx.stdout.write(`${meta.name}\n`);
    return ExitCode.ok;
  },
};
