/**
 * backup-fetch: restore a base backup from the repository into an empty
 * directory and, on request, set up point-in-time recovery.
 *
 * Not half-written, by design: files are written in place (a temp name and a
 * rename for each of thousands of files would double the metadata work), but
 * the data directory carries a marker (`.gcwal-restore-incomplete`) from the
 * first write until the very end, global/pg_control is written under a
 * temporary name and renamed last, and backup_label/recovery.signal appear
 * only after every part and file is verified. A failed or killed restore
 * therefore leaves a directory PostgreSQL refuses to start (no control
 * file), with the marker saying why; running backup-fetch again into it
 * clears it (and the tablespace directories the marker names) and restores
 * afresh. So does a run killed after the marker went but before it could
 * exit 0: the directory holds exactly this backup's backup_label and no
 * postmaster.pid, so PostgreSQL has not started on it (it renames
 * backup_label when recovery begins) and nothing but this restore is lost by
 * redoing it. Any other non-empty directory is still refused.
 */
import * as path from 'node:path';
import { type BackupMeta, isIncremental } from '../../core/backup/meta.ts';
import { asGcwalError, DestinationNotEmptyError, type GcwalError, UsageError } from '../../core/errors.ts';
import { resolveBackupForTarget } from '../../core/restore/choose-backup.ts';
import { recoveryConfigBlock, type RecoveryPlan } from '../../core/restore/recovery-config.ts';
import type { Storage } from '../../core/storage/types.ts';
import type { Logger } from '../log.ts';
import type { Progress } from '../progress.ts';
import {
  checkDestination,
  checkTarget,
  clearTarget,
  createTarget,
  finishedRestoreOf,
  INCOMPLETE_MARKER,
  mayBeFinishedRestore,
  markerContent,
  tightenDataDirectoryMode,
} from './destination.ts';
import { DirectorySet, writeFileDurably } from './disk.ts';
import type { ExtractTarget } from './extract.ts';
import { checkDeltaBackup, inspectDeltaDestination, prepareDelta } from './delta.ts';
import { finalizeRestore } from './finalize.ts';
import { readManifest, withoutRecoverySignals } from './manifest.ts';
import { type PartsOptions, restoreParts } from './parts.ts';
import { type ChainLink, readChain } from './chain.ts';
import { checkBackupForServer, type TargetServer } from './server-version.ts';
import { backupTablespaces, parseTablespaceMap, planTablespaces, type TablespaceTarget } from './tablespaces.ts';

/** What fetchBackup needs. */
export interface FetchOptions {
  /** absolute path of the data directory to create or fill */
  dest: string;
  /** backup name or LATEST */
  backup: string;
  /** `--tablespace-map` values: OID=/new/path or /old/path=/new/path */
  tablespaceMappings: readonly string[];
  /** `--tablespaces-as-recorded`: restore unmapped tablespaces to the locations the backup records (refused otherwise) */
  tablespacesAsRecorded?: boolean;
  /** recovery to set up; undefined leaves the directory without recovery settings */
  recovery: RecoveryPlan | undefined;
  /** repository URL written into restore_command */
  repoUrl: string;
  /** gcwal executable restore_command runs */
  gcwalCommand: string;
  /** parts restored in parallel */
  concurrency: number;
  /** retries of a part after a transient storage failure */
  retries: number;
  log: Logger;
  /** progress display, created once the backup's size is known */
  progress: (meta: BackupMeta) => Progress;
  /** the server that will start the restore, when known: a backup of another major version is refused */
  server?: TargetServer;
  signal?: AbortSignal;
  /** `--delta`: dest may be a stopped data directory of the backup's cluster; only what differs is written (delta.ts) */
  delta?: boolean;
}

/** What fetchBackup restored. */
export interface FetchResult {
  meta: BackupMeta;
  dest: string;
  tablespaces: TablespaceTarget[];
  files: number;
  bytes: number;
}

/**
 * Restore the backup named in `options` into `options.dest`.
 *
 * Before writing anything: throws DestinationNotEmptyError when dest or a
 * tablespace target has entries (but for a restore gcwal left unfinished
 * there, which is cleared and redone), NotFoundError (hint: backup-list) for an
 * unknown backup, UsageError for bad tablespace mappings or recovery values,
 * for tablespace locations the user did not confirm (tablespacesAsRecorded or
 * a mapping), and for a time or LSN target before the backup's end (LATEST
 * takes the newest backup of the repository's cluster that ended by the
 * target; see core/restore/choose-backup.ts), ClusterMismatchError for a
 * named backup of another cluster, VersionMismatchError for a backup of
 * another major version than `server`'s, CorruptObjectError for damaged
 * metadata or manifest (parsed strictly). Afterwards, any failure
 * (CorruptObjectError naming the file and backup, storage errors, abort)
 * leaves the marker file in dest and says so in the error's hint.
 */
export async function fetchBackup(storage: Storage, options: FetchOptions): Promise<FetchResult> {
  const { dest, log, signal } = options;
  // --delta into an existing data directory: refusals before anything else; absent or empty, it is a plain restore.
  const delta = options.delta ? await inspectDeltaDestination(dest) : undefined;
  // Not empty and no marker: it may still be this very backup restored by a
  // run killed before it could exit 0 (decided below, once the backup is
  // known); anything else not empty is refused now, before the repository is read.
  const destination = delta
    ? { state: 'empty' as const, markedTablespaces: [] }
    : await checkDestination(dest).catch(async (err) => {
        if (err instanceof DestinationNotEmptyError && (await mayBeFinishedRestore(dest))) return undefined;
        throw err;
      });

  // A time or LSN target picks (for LATEST) or must follow (for a name) the
  // backup's end: refused here, before any write, rather than by PostgreSQL
  // after the whole restore.
  const { meta, newerSkipped, otherClusters } = await resolveBackupForTarget(storage, options.backup, options.recovery?.target, signal);
  if (otherClusters.length > 0)
    log.warn(
      `ignored ${otherClusters.length} backup${otherClusters.length === 1 ? '' : 's'} of another cluster than the repository's (${otherClusters.join(', ')}); something other than this cluster's backup-push wrote ${otherClusters.length === 1 ? 'it' : 'them'}`,
    );
  if (options.server) checkBackupForServer(meta, options.server);
  if (delta && isIncremental(meta))
    throw new UsageError(
      `backup ${meta.name} is incremental: --delta does not restore an incremental backup yet`,
      `restore it into an empty directory, or restore its full backup ${meta.full} with --delta`,
    );
  if (delta) checkDeltaBackup(delta, meta, dest);
  if (newerSkipped > 0)
    log.info(
      `restoring ${meta.name}, the newest backup that ended before the recovery target (${newerSkipped} newer backup${newerSkipped === 1 ? '' : 's'} ended after it)`,
    );
  const { state: destState, markedTablespaces } = destination ?? (await finishedRestoreOf(dest, meta.backupLabel, tablespaceMapLocations));
  const tablespaces = planTablespaces(
    backupTablespaces(meta),
    { mappings: options.tablespaceMappings, asRecorded: options.tablespacesAsRecorded === true },
    dest,
    meta.name,
  );
  const tablespaceStates = [];
  // A tablespace directory may be cleared only if the unfinished restore's marker names it and the user chose it again.
  for (const t of tablespaces) tablespaceStates.push(await checkTarget(t.target, `tablespace ${t.oid} target`, markedTablespaces.includes(t.target)));
  // Built now so a value PostgreSQL's configuration cannot hold fails before any write.
  const recoveryBlock =
    options.recovery && recoveryConfigBlock({ plan: options.recovery, repoUrl: options.repoUrl, gcwalCommand: options.gcwalCommand, backupName: meta.name });
  // Block checksums serve only a delta restore; a full one does not hold them in memory.
  const listed = await readManifest(storage, meta, signal, { blocks: delta !== undefined });
  const { restored: manifest, signals } = withoutRecoverySignals(listed);
  // An incremental's older backups, all checked before the first write.
  const chain = isIncremental(meta) ? await readChain(storage, meta, manifest, signal) : [];
  if (chain.length > 0) log.info(`${meta.name} is incremental: restoring it from its chain, ${[...chain.map((c) => c.meta.name), meta.name].join(' → ')}`);
  if (signals.length > 0)
    log.warn(
      `backup ${meta.name} holds ${signals.join(' and ')} (the server backed up was in recovery): not restored, the restore sets up its own recovery${signals.includes('standby.signal') ? '; write standby.signal yourself to start a standby' : ''}`,
    );
  log.info(`restoring ${meta.name} into ${dest}`, { parts: meta.parts.length, files: meta.fileCount, bytes: meta.rawSize });

  // First writes: the directories and the marker.
  const dirs = new DirectorySet();
  const fromChain = chain.reduce((n, c) => ({ bytes: n.bytes + c.bytes, files: n.files + c.take.size }), { bytes: 0, files: 0 });
  const progress = options.progress({ ...meta, rawSize: meta.rawSize + fromChain.bytes, fileCount: meta.fileCount + fromChain.files });
  const created = destState === 'absent' ? await createTarget(dest) : [];
  if (destState !== 'absent' && (await tightenDataDirectoryMode(dest))) log.info(`changed the mode of ${dest} to 0700, as PostgreSQL requires`);
  try {
    // The marker names every tablespace directory before any is written, so a rerun knows which it may clear.
    await writeFileDurably(
      path.join(dest, INCOMPLETE_MARKER),
      markerContent(
        meta.name,
        tablespaces.map((t) => t.target),
        new Date(),
      ),
    );
    if (destState === 'unfinished') {
      log.info(`${dest} holds a restore gcwal left unfinished: clearing it to restore again`);
      const dropped = markedTablespaces.filter((m) => !tablespaces.some((t) => t.target === m));
      if (dropped.length > 0)
        log.warn(
          `the unfinished restore also wrote to ${dropped.join(', ')}, which this restore does not use; delete ${dropped.length === 1 ? 'it' : 'them'} by hand`,
        );
      await clearTarget(dest, [INCOMPLETE_MARKER]);
    }
    for (const [i, t] of tablespaces.entries()) {
      if (tablespaceStates[i] === 'absent') created.push(...(await createTarget(t.target)));
      if (tablespaceStates[i] === 'unfinished') await clearTarget(t.target, []);
      dirs.add(t.target);
    }
    dirs.add(dest);
    // Parents of created targets gained an entry: fsync them too.
    for (const dir of created) dirs.add(path.dirname(dir));

    const kept = delta ? await prepareDelta(dest, meta, manifest, { concurrency: options.concurrency, log, signal }) : undefined;
    const target: ExtractTarget = {
      backupName: meta.name,
      dest,
      tablespaces: new Map(tablespaces.map((t) => [t.oid, t.target])),
      // The whole manifest: the parts still hold the signal files, checked and not written (keep).
      manifest: listed,
      // Kept files of parts that are not read are there, verified, as if those parts had been.
      seen: new Set(kept ? [...kept.kept].filter((p) => kept.skipParts.has(manifest.get(p)?.part ?? -1)) : []),
      dirs,
      progress,
      keep: kept || signals.length > 0 ? new Set([...(kept?.kept ?? []), ...signals]) : undefined,
      patch: kept?.patch,
      skipParts: kept?.skipParts,
      ranged: kept?.ranged,
    };
    const partsOptions = { concurrency: options.concurrency, retries: options.retries, log, signal };
    const totals = await restoreChain(storage, chain, target, partsOptions)
      .then(() => restoreParts(storage, meta, target, partsOptions))
      .finally(() => progress.done());
    await finalizeRestore({ meta, dest, tablespaces, manifest, seen: target.seen, dirs, recoveryBlock });
    return { meta, dest, tablespaces, files: totals.files + fromChain.files, bytes: totals.bytes + fromChain.bytes };
  } catch (err) {
    throw withIncompleteHint(err, dest, tablespaces);
  }
}

/**
 * Restore the files the older backups of a chain supply (chain.ts), oldest
 * first; each file they write counts as found (`target.seen`) for the last
 * backup's completeness check.
 */
async function restoreChain(storage: Storage, chain: readonly ChainLink[], target: ExtractTarget, options: PartsOptions): Promise<void> {
  for (const link of chain) {
    const seen = new Set<string>();
    await restoreParts(
      storage,
      link.meta,
      {
        ...target,
        backupName: link.meta.name,
        manifest: link.manifest,
        seen,
        take: link.take,
        skipParts: link.skipParts,
        keep: undefined,
        patch: undefined,
        ranged: undefined,
      },
      options,
    );
    for (const p of link.take) if (seen.has(p)) target.seen.add(p);
  }
}

/** The directories a restored tablespace_map names; none when it does not parse (then nothing is cleared). */
function tablespaceMapLocations(text: string): string[] {
  try {
    return parseTablespaceMap(text, 'tablespace_map').map((t) => t.location);
  } catch {
    return [];
  }
}

/**
 * The error, its hint extended with what to do about the unfinished
 * directory. The error keeps its class (callers and tests match on it).
 */
function withIncompleteHint(err: unknown, dest: string, tablespaces: readonly TablespaceTarget[]): GcwalError {
  const e = asGcwalError(err);
  const others = tablespaces.length > 0 ? ` and the tablespace directories ${tablespaces.map((t) => t.target).join(', ')}` : '';
  const extra = `${dest} is incomplete (marker ${INCOMPLETE_MARKER}); run the same backup-fetch again to clear it${others} and restore afresh`;
  // GcwalError.hint is readonly for consumers; here the error is ours, just thrown, not yet seen by anyone.
  Object.defineProperty(e, 'hint', { value: `${e.hint}; ${extra}`, enumerable: true });
  return e;
}
