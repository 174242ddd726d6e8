import * as path from 'node:path';
import { UsageError } from '../../core/errors.ts';
import { describeTarget, parseRecoveryOptions, type RecoveryPlan } from '../../core/restore/recovery-config.ts';
import { requireRepo } from '../config.ts';
import { createProgress } from '../progress.ts';
import { checkRecoveryTarget } from '../restore/archive-target.ts';
import { fetchBackup, type FetchResult } from '../restore/fetch.ts';
import { majorFromDataDirectoryPath, readServerMajor } from '../restore/server-version.ts';
import type { Command } from './types.ts';
import { requireRepositoryIdentity } from '../../core/repository.ts';

type Options = Record<string, string | boolean | string[] | undefined>;

function str(options: Options, name: string): string | undefined {
  const v = options[name];
  if (Array.isArray(v)) throw new UsageError(`--${name} is given more than once`, `give --${name} once`);
  return typeof v === 'string' ? v : undefined;
}

/** The recovery plan from the command's options; undefined when no recovery was asked for. */
export function recoveryPlanFromOptions(options: Options): RecoveryPlan | undefined {
  return parseRecoveryOptions({
    recovery: options.recovery === true,
    targetTime: str(options, 'target-time'),
    targetLsn: str(options, 'target-lsn'),
    targetName: str(options, 'target-name'),
    targetImmediate: options['target-immediate'] === true,
    targetTimeline: str(options, 'target-timeline'),
    targetAction: str(options, 'target-action'),
    targetExclusive: options['target-exclusive'] === true,
  });
}

/** The lines printed on stdout once the restore succeeded: what was done and the next step. */
export function nextSteps(result: FetchResult, plan: RecoveryPlan | undefined, runningAsRoot: boolean): string {
  const { meta, dest } = result;
  const lines = [`restored ${meta.name} into ${dest} (${result.files} files)`];
  for (const t of result.tablespaces) lines.push(`tablespace ${t.oid} restored into ${t.target}`);
  if (plan) {
    lines.push(`recovery.signal written: PostgreSQL will replay WAL from the repository up to ${describeTarget(plan)}`);
  } else {
    lines.push(
      `no recovery configured: PostgreSQL needs WAL ${meta.startWalSegment} to ${meta.stopWalSegment} in ${path.join(dest, 'pg_wal')} to start; run backup-fetch with --recovery (or a --target-* option) to fetch it from the repository instead`,
    );
  }
  if (runningAsRoot) {
    const dirs = [dest, ...result.tablespaces.map((t) => t.target)].map(shellArg).join(' ');
    lines.push(`the files belong to root; PostgreSQL runs as its own user: chown -R postgres:postgres ${dirs}`);
  }
  lines.push(`start PostgreSQL with: pg_ctl -D ${shellArg(dest)} start`);
  return lines.join('\n') + '\n';
}

function shellArg(s: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `gcwal backup-fetch <dest> <name|LATEST>`: restore a base backup and set up recovery. */
export const backupFetch: Command = {
  name: 'backup-fetch',
  summary: 'restore a base backup and set up point-in-time recovery',
  usage:
    'gcwal backup-fetch <dest> <name|LATEST> [--recovery | --target-time TIME | --target-lsn LSN | --target-name NAME | --target-immediate] [--tablespace-map OID=DIR ... | --tablespaces-as-recorded] [--delta]',
  details: `
Restores a base backup (a name from backup-list, or LATEST for the newest
complete one) into dest, which must not exist or be empty; it is created with
mode 0700. Every part and every file is verified (size and CRC32C) against the
backup's metadata and manifest while it streams; nothing is copied to a
temporary place.

Tablespaces are restored outside dest, so where they go is never taken from
the repository alone: give each one a directory with --tablespace-map
OID=DIR, or pass --tablespaces-as-recorded to put those not mapped back at
the locations the backup records (shown by the refusal). Without either,
a backup with tablespaces is refused with exit 2 before anything is written,
naming them. Each directory must be absent or empty, and none may be,
contain or lie inside dest or another tablespace's directory.

The repository is not trusted: LATEST and a backup chosen for a target are
only backups of the cluster gcwal.json names (a backup of another cluster
is ignored, and refused by name with exit 4); metadata and manifest are
checked strictly (exit 6 names the field); no path of a part, no link and no
recorded location can write outside dest and the tablespace directories;
setuid, setgid and sticky bits are never restored.

While it runs, dest holds .gcwal-restore-incomplete and no global/pg_control,
so PostgreSQL cannot start it; backup_label, tablespace_map and the recovery
settings are written only once everything is verified. If it fails or is
killed, run the same backup-fetch again: it clears dest (and the tablespace
directories the marker names) and restores afresh. So it does when killed
after it finished but before it exited: dest then holds this backup's
backup_label and PostgreSQL has not started on it (no postmaster.pid, and
backup_label not yet renamed). Any other non-empty dest is refused (exit 10).

With --delta, dest may instead be a stopped data directory of the backup's
cluster (a standby or a failed primary, without tablespaces): files whose
size and CRC32C match the backup's manifest stay untouched, the others are
rewritten, and whatever the backup does not have is removed (pg_wal's
contents, postmaster.pid, standby.signal, replication slots and the rest a
base backup leaves out), so dest ends exactly as a restore into an empty
directory; parts holding only unchanged files are not read. Refused before
anything is written: a running server (postmaster.pid of a live process,
exit 10), a directory of another cluster (system identifier in
global/pg_control, exit 4), and one that is not a data directory (exit 2).
A standby needs its standby.signal written again afterwards.

With --recovery or any --target-* option, recovery.signal is created and
postgresql.auto.conf gets restore_command = 'env GCWAL_REPO=... /path/to/gcwal
wal-fetch %f %p' and the target settings; without them, WAL must be provided
by hand. /path/to/gcwal is the gcwal being run, by the absolute path it was
run as (a symbolic link kept, a relative path made absolute, a bare name as
found on PATH), so the restored server needs no gcwal on its PATH;
--gcwal-command sets another. A backup's own standby.signal or
recovery.signal (a standby's backup taken by an older gcwal) is never
restored: which recovery runs is this restore's decision.
Time targets need a time zone (e.g. "2024-05-01 12:30:00+00").

A server starts only a data directory of its own major version. With
--pg-bin DIR (the bin directory of the PostgreSQL that will start the
restore) or a destination whose path names the version
(/var/lib/postgresql/<major>/<cluster>, /var/lib/pgsql/<major>/data), a
backup of another major version is refused with exit 2 before anything is
written. --pg-bin wins over the path (restoring for pg_upgrade, say).

Recovery cannot stop before the backup it starts from is consistent (its
stop time and LSN, see backup-list). With --target-time or --target-lsn,
LATEST therefore means the newest backup that ended at or before the target,
and a target before the end of the named backup, or with LATEST before the
end of every backup (before the earliest restorable point, as gcwal status
shows it), is refused with exit 2 before anything is written, naming the
earliest point that can be restored to. With the pipeline's catalogue, a
--target-time after the last commit archived, or a --target-name that no
restore point in the archive's recoverable WAL has, is refused the same way
(archive recovery would run out of WAL first and PostgreSQL would not
start), unless --force-target (the WAL will be archived in time); when
the WAL that decides it is not validated yet it is a warning.

gcwal does not change file ownership: when run as root, chown the directories
to the PostgreSQL user before starting it (the command prints how).
Exit codes: 1 no such backup, 2 bad options, unconfirmed tablespace
locations, a target before the earliest restorable point or one the archive
cannot reach, or a backup of another PostgreSQL major version than the
server that will start it (--pg-bin, or the version dest's path names), 4 the backup is
of another cluster than the repository, 6 the backup is damaged,
10 dest or a tablespace directory is not empty.`,
  options: {
    'tablespace-map': {
      type: 'string',
      multiple: true,
      placeholder: 'OID=DIR',
      description: 'restore a tablespace into DIR (OID=/new/dir or /old/dir=/new/dir; repeatable)',
    },
    'tablespaces-as-recorded': { type: 'boolean', description: 'restore the tablespaces not mapped to the locations the backup records' },
    recovery: { type: 'boolean', description: 'set up archive recovery to the end of the archive' },
    'target-time': { type: 'string', placeholder: 'TIME', description: 'recover up to this time (with time zone, e.g. "2024-05-01 12:30:00+00")' },
    'target-lsn': { type: 'string', placeholder: 'LSN', description: 'recover up to this WAL location, e.g. 0/3000060' },
    'target-name': { type: 'string', placeholder: 'NAME', description: 'recover up to this restore point (pg_create_restore_point)' },
    'target-immediate': { type: 'boolean', description: 'stop as soon as the backup is consistent' },
    'target-timeline': { type: 'string', placeholder: 'TLI', description: 'timeline to follow: latest (default), current, or a number' },
    'target-action': { type: 'string', placeholder: 'ACTION', description: 'at the target: pause (default), promote or shutdown' },
    'target-exclusive': { type: 'boolean', description: 'stop just before the target instead of just after it' },
    'force-target': {
      type: 'boolean',
      description: "restore although the pipeline's catalogue says the archived WAL cannot reach the target (a warning instead)",
    },
    delta: {
      type: 'boolean',
      description:
        "dest is a stopped data directory of the backup's cluster: keep the files that match the backup, rewrite the rest, remove what it does not have",
    },
    'gcwal-command': {
      type: 'string',
      placeholder: 'PATH',
      description: 'gcwal executable restore_command runs (default: this gcwal, by the absolute path it was run as)',
    },
    'pg-bin': {
      type: 'string',
      placeholder: 'DIR',
      description:
        'bin directory of the PostgreSQL that will start the restore (e.g. /usr/lib/postgresql/18/bin): a backup of another major version is refused',
    },
  },
  positionals: 2,
  async run(ctx, [destArg, name], options) {
    const plan = recoveryPlanFromOptions(options);
    const mappings = options['tablespace-map'];
    const repoUrl = requireRepo(ctx.config);
    const storage = await ctx.storage();
    // "no such backup" (exit 1) only of a repository that exists.
    await requireRepositoryIdentity(storage, { signal: ctx.signal });
    // A target the archive's WAL cannot reach is refused before anything is written.
    await checkRecoveryTarget(ctx, plan, options['force-target'] === true);
    const dest = path.resolve(ctx.cwd, destArg);
    const pgBin = str(options, 'pg-bin');
    const server = pgBin !== undefined ? await readServerMajor(path.resolve(ctx.cwd, pgBin)) : majorFromDataDirectoryPath(dest);
    const result = await fetchBackup(storage, {
      dest,
      server,
      backup: name,
      tablespaceMappings: Array.isArray(mappings) ? mappings : typeof mappings === 'string' ? [mappings] : [],
      tablespacesAsRecorded: options['tablespaces-as-recorded'] === true,
      recovery: plan,
      repoUrl,
      gcwalCommand: str(options, 'gcwal-command') ?? ctx.gcwalCommand(),
      concurrency: ctx.config.concurrency,
      retries: ctx.config.retries,
      log: ctx.log,
      progress: (meta) =>
        createProgress({ out: ctx.stderr, interactive: ctx.interactive, totalBytes: meta.rawSize, totalFiles: meta.fileCount, label: `restore ${meta.name}` }),
      signal: ctx.signal,
      delta: options.delta === true,
    });
    const runningAsRoot = process.getuid?.() === 0;
    if (runningAsRoot) ctx.log.warn(`restored as root: chown the restored directories to the PostgreSQL user before starting it`);
    ctx.log.info(`restored ${result.meta.name}`, { files: result.files, bytes: result.bytes });
    ctx.stdout.write(nextSteps(result, plan, runningAsRoot));
    return 0;
  },
};
