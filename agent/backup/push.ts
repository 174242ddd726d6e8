import * as fs from 'node:fs/promises';
import type pg from 'pg';
import type { BackupMeta, ManifestEntry } from '../../core/backup/meta.ts';
import { FULL_FORMAT, INCREMENTAL_FORMAT, MANIFEST_FORMAT, serializeBackupMeta } from '../../core/backup/meta.ts';
import { getCodec } from '../../core/codec/index.ts';
import { ConflictError, ExitCode, GcwalError, UsageError } from '../../core/errors.ts';
import { backupManifestKey, backupMetaKey, backupName, backupPrefix, Meta } from '../../core/layout.ts';
import { requireRepositoryFor } from '../../core/repository.ts';
import { writeOnce } from '../../core/storage/same-content.ts';
import type { Storage } from '../../core/storage/types.ts';
import { formatLsn } from '../../core/wal/lsn.ts';
import { segmentNumberOfEndLsn, segmentNumberOfLsn, segmentRange, walSegmentName } from '../../core/wal/name.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { connectPostgres } from '../pg/connect.ts';
import type { PrimaryConninfo } from '../pg/conninfo.ts';
import type { Progress } from '../progress.ts';
import { CONTROL_FILE } from './exclude.ts';
import { archiveModeOffError, STANDBY_WAIT_NOTE, waitForWal, walNotArchivedError } from './archive-wait.ts';
import { checkPrimary, switchWalOnPrimary, type PrimaryOptions } from './primary.ts';
import { parseBackupLabel, readArchiverStatus, readClusterInfo, startBackup, stopBackup, type ClusterInfo } from './pg-backup.ts';
import { planParts } from './plan.ts';
import { writeParts } from './parts.ts';
import { walkDataDirectory } from './walk.ts';
import { findParent, type ParentBackup, splitByParent } from './incremental.ts';

/** Everything pushBackup needs; built by the backup-push command. */
export interface PushOptions {
  /** data directory as given on the command line, absolute */
  pgdata: string;
  storage: Storage;
  config: Pick<Config, 'compression' | 'compressionLevel' | 'concurrency' | 'partSize' | 'retries' | 'pg'>;
  log: Logger;
  signal: AbortSignal;
  /** gcwal's version, recorded in backup.json */
  version: string;
  /** a progress display for the copy (a silent one when not interactive) */
  progress: (label: string, totalBytes: number, totalFiles: number) => Progress;
  /**
   * Refuse a primary with archive_mode = off, and record the backup only once
   * the WAL from its start to its stop segment is in the repository, failing
   * when none of it arrived for `timeoutSeconds`. false skips both, for WAL
   * kept by other means (--no-archive-check).
   */
  archiveCheck: { timeoutSeconds: number } | false;
  /**
   * On a standby: the primary (GCWAL_PRIMARY_CONNINFO), checked before the
   * backup starts and told to switch WAL segments once it stops. Unused on a
   * primary and with archiveCheck false.
   */
  primary?: PrimaryConninfo;
  /**
   * --incremental: store only the files changed since the newest backup of
   * the cluster's timeline lineage (incremental.ts); refused with
   * NoParentBackupError when there is none.
   */
  incremental?: boolean;
}

/**
 * Resolve both paths through symlinks and refuse when they differ: copying
 * another directory than the server's would produce a backup of the wrong
 * cluster (or of nothing) that only fails at restore time.
 */
async function checkDataDirectory(given: string, serverDir: string): Promise<string> {
  let mine: string;
  try {
    mine = await fs.realpath(given);
  } catch (err) {
    throw new UsageError(
      `data directory ${given} does not exist or is not readable (${(err as NodeJS.ErrnoException).code})`,
      'pass the data directory of the running server (SHOW data_directory)',
    );
  }
  const theirs = await fs.realpath(serverDir).catch(() => undefined);
  if (theirs === undefined) {
    throw new UsageError(`the server's data directory ${serverDir} is not on this host`, 'run backup-push on the database host, connected to the local server');
  }
  if (mine !== theirs) {
    throw new UsageError(
      `${given} is not the data directory of the server at PGHOST/PGPORT, which is ${serverDir}`,
      "pass the server's data directory, or point PGHOST/PGPORT at the server that runs on this one",
    );
  }
  return mine;
}

/** Whether anything (a finished backup or the parts of a failed one) is stored under the backup's folder. */
async function folderInUse(storage: Storage, name: string, signal?: AbortSignal): Promise<boolean> {
  for await (const _ of storage.list(backupPrefix(name), { signal })) return true;
  return false;
}

/**
 * `base_<start segment>`; when that folder is taken (two backups starting in
 * one segment, or the parts of a failed attempt) the start LSN's low 32 bits
 * are appended, which sorts after the plain name. Throws ConflictError if
 * both are taken.
 */
export async function chooseBackupName(storage: Storage, startSegment: string, startLsn: bigint, signal?: AbortSignal): Promise<string> {
  const plain = backupName(startSegment);
  if (!(await folderInUse(storage, plain, signal))) return plain;
  const suffixed = `${plain}_${(startLsn & 0xffff_ffffn).toString(16).toUpperCase().padStart(8, '0')}`;
  if (!(await folderInUse(storage, suffixed, signal))) return suffixed;
  throw new ConflictError(`backup folders ${plain} and ${suffixed} are both in use`, 'wait for the other backup-push to finish, then run it again');
}

/** Write manifest.jsonl (uncompressed JSON lines) and return its record for backup.json. */
async function writeManifest(storage: Storage, name: string, entries: readonly ManifestEntry[], signal: AbortSignal): Promise<BackupMeta['manifest']> {
  const key = backupManifestKey(name);
  const lines = function* () {
    for (const entry of entries) yield Buffer.from(JSON.stringify(entry) + '\n');
  };
  const info = await writeOnce(storage, key, lines, { signal, metadata: { [Meta.codec]: 'none' }, contentType: 'application/x-ndjson' });
  return { key, storedSize: info.size, storedCrc32c: info.crc32c, entries: entries.length, format: MANIFEST_FORMAT };
}

/** The copy between start and stop: walk, tar parts, stop (the WAL is waited for by the caller). */
async function copyAndStop(client: pg.Client, info: ClusterInfo, pgdata: string, name: string, parent: ParentBackup | undefined, options: PushOptions) {
  const { log, signal, config } = options;
  const walk = await walkDataDirectory(pgdata, {
    pgMajor: info.major,
    signal,
    onSkip: (path, reason, level) => (level === 'warn' ? log.warn : log.debug)(`skipping ${path}: ${reason}`),
  });
  const { copy, referenced } = parent ? splitByParent(walk.entries, parent) : { copy: walk.entries, referenced: [] };
  const copied = copy.filter((e) => e.type === 'file');
  const bytes = copied.reduce((n, e) => n + e.size, 0);
  const plans = planParts(copy, config.partSize, [CONTROL_FILE]);
  if (parent)
    log.info(`incremental on ${parent.meta.name}: ${copied.length} files changed, ${referenced.length} unchanged`, {
      changedBytes: bytes,
      unchanged: referenced.length,
    });
  log.debug('copying the data directory', { files: copied.length, bytes, parts: plans.length, tablespaces: walk.tablespaces.length });
  const progress = options.progress(`backup ${name}`, bytes, copied.length);
  // done() also on failure: the error must not land on the progress line.
  const written = await writeParts(plans, {
    storage: options.storage,
    backupName: name,
    codec: getCodec(config.compression),
    level: config.compressionLevel,
    concurrency: config.concurrency,
    retries: config.retries,
    signal,
    onRetry: (index, attempt, err) => log.warn(`uploading part ${index} failed, retrying (${attempt}/${config.retries})`, { error: err.message }),
    onProgress: (bytes, files) => progress.add(bytes, files),
    onSkip: (path, reason) => log.debug(`skipping ${path}: ${reason}`),
  }).finally(() => progress.done());
  log.info('data copied, stopping the backup');
  const stop = await stopBackup(client, info.versionNum, false);
  const links = walk.entries
    .filter((e) => e.type === 'symlink')
    .map((e): ManifestEntry => ({ path: e.path, type: 'symlink', size: 0, mode: e.mode, mtime: e.mtime.toISOString(), target: e.target }));
  return { walk, written, stop, manifest: [...links, ...written.manifest, ...referenced] };
}

/**
 * Refuse a primary whose WAL is never archived (archive_mode = off) unless
 * the check is off, then only warn. A standby's own archive_mode says nothing
 * about its primary's archiving: there the wait for the WAL is the check.
 */
function checkArchiveMode(info: ClusterInfo, where: string, options: PushOptions): void {
  if (info.archiveMode === 'off' && !info.inRecovery) {
    if (options.archiveCheck) throw archiveModeOffError(where);
    options.log.warn('archive_mode is off: the WAL this backup needs does not reach the repository; restoring it needs that WAL from elsewhere');
  } else if (!options.archiveCheck) {
    options.log.warn('--no-archive-check: not checking that the WAL this backup needs reaches the repository');
  }
}

/**
 * The primary to switch WAL on once a standby's backup stops, checked now
 * (see checkPrimary); undefined on a primary, without GCWAL_PRIMARY_CONNINFO
 * or without the archive check.
 */
async function primaryFor(info: ClusterInfo, options: PushOptions): Promise<PrimaryOptions | undefined> {
  if (!options.primary || !options.archiveCheck) return undefined;
  if (!info.inRecovery) {
    // One environment may serve every host, whichever is the primary today.
    options.log.debug('GCWAL_PRIMARY_CONNINFO is not used: the server is the primary');
    return undefined;
  }
  const primary: PrimaryOptions = { primary: options.primary, passfile: options.config.pg.passfile, log: options.log, signal: options.signal };
  const where = await checkPrimary(primary, info.systemIdentifier);
  options.log.debug('the primary is reachable and may switch wal', { primary: where });
  return primary;
}

/**
 * Wait until every segment in `needed` is in the repository; throws
 * WalNotArchivedError, naming what pg_stat_archiver reports, when none of
 * the missing ones arrived for `timeoutSeconds`. The backup is already
 * stopped: the server is not in backup mode while this waits.
 */
async function awaitArchived(
  client: pg.Client,
  info: ClusterInfo,
  name: string,
  needed: readonly string[],
  timeoutSeconds: number,
  options: PushOptions,
): Promise<void> {
  const { log, signal, storage } = options;
  // Without the primary's connection the stop segment waits for the primary to leave it.
  const standbyNote = info.inRecovery && !options.primary ? `; ${STANDBY_WAIT_NOTE}` : '';
  const missing = await waitForWal(storage, needed, {
    timeoutMs: timeoutSeconds * 1000,
    signal,
    onWaiting: (m) =>
      log.info(
        `waiting for ${m.length === 1 ? `wal ${m[0]}` : `${m.length} wal segments, ${m[0]} to ${m[m.length - 1]},`} to reach the repository${standbyNote}`,
        { timeoutSeconds },
      ),
  });
  if (missing.length === 0) return;
  const archiver = await readArchiverStatus(client).catch((err) => {
    log.debug('could not read pg_stat_archiver', { error: (err as Error).message });
    return undefined;
  });
  throw walNotArchivedError({
    backup: name,
    missing,
    timeoutSeconds,
    archiver,
    standby: info.inRecovery ? { primaryConninfo: options.primary !== undefined } : false,
  });
}

/**
 * Take a base backup of the running cluster whose data directory is
 * `pgdata` into the repository, with PostgreSQL's non-exclusive backup API
 * on a single session. Writes the parts, then manifest.jsonl, then (last,
 * making the backup visible) backup.json, and returns the metadata.
 *
 * Throws UsageError when `pgdata` is not the server's data directory,
 * WalNotArchivedError when archive_mode is off on a primary or the WAL the
 * backup needs does not reach the repository (with `archiveCheck`),
 * RepositoryMissingError when the repository has no gcwal.json (never
 * created with gcwal repo-create), ClusterMismatchError when it holds another cluster
 * (or, on a standby, `primary` reaches a server of another cluster; a
 * UsageError when that server is not a primary; see primary.ts),
 * PostgresError for connection and SQL failures, InvalidInputError for
 * unreadable files, storage errors as the driver raises them. On any failure
 * after the backup started the backup is stopped (the server is not left in
 * backup mode) and no backup.json is written; parts already stored remain as
 * invisible orphans.
 */
export async function pushBackup(options: PushOptions): Promise<BackupMeta> {
  const { storage, log, signal, config } = options;
  const { client, where } = await connectPostgres(config.pg, { applicationName: 'gcwal backup-push', signal, warn: (m) => log.warn(m) });
  // PostgreSQL aborts a non-exclusive backup when its session ends, so
  // closing the connection is how an interrupt leaves the server clean.
  const onAbort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  // What the server says on this session (a restartpoint on a standby, a
  // WARNING about the backup) reaches the log; warnings deserve attention.
  client.on('notice', (notice) => (notice.severity === 'WARNING' ? log.warn : log.info)(`postgresql: ${notice.message ?? ''}`));
  try {
    const info = await readClusterInfo(client);
    const pgdata = await checkDataDirectory(options.pgdata, info.dataDirectory);
    await requireRepositoryFor(storage, { systemIdentifier: info.systemIdentifier, walSegmentSize: info.walSegmentSize }, { signal });
    checkArchiveMode(info, where, options);
    log.debug('connected', { server: where, version: info.version, systemIdentifier: info.systemIdentifier });
    const primary = await primaryFor(info, options);

    const startTime = new Date();
    const start = await startBackup(client, info.versionNum, `gcwal ${startTime.toISOString()}`);
    let stopped = false;
    try {
      const startSegment = walSegmentName(start.timeline, segmentNumberOfLsn(start.lsn, info.walSegmentSize), info.walSegmentSize);
      const name = await chooseBackupName(storage, startSegment, start.lsn, signal);
      const parent = options.incremental
        ? await findParent(
            storage,
            pgdata,
            {
              systemIdentifier: info.systemIdentifier,
              pgVersionNum: info.versionNum,
              walSegmentSize: info.walSegmentSize,
              timeline: start.timeline,
              startLsn: start.lsn,
            },
            log,
            signal,
          )
        : undefined;
      log.info(`backup ${name} started`, { startLsn: formatLsn(start.lsn), ...(parent ? { parent: parent.meta.name } : {}) });

      const { walk, written, stop, manifest } = await copyAndStop(client, info, pgdata, name, parent, options);
      stopped = true;
      const stopTime = new Date();

      const label = parseBackupLabel(stop.backupLabel);
      const timeline = label.timeline ?? start.timeline;
      if (label.walFile !== startSegment) log.warn(`backup label starts in ${label.walFile}, not ${startSegment} as the name says`);
      if (options.archiveCheck) {
        if (primary) await switchWalOnPrimary(primary, (segmentNumberOfEndLsn(stop.lsn, info.walSegmentSize) + 1n) * BigInt(info.walSegmentSize));
        // At least the start segment, should a standby report its stop at the start.
        const needed = [...segmentRange(timeline, label.lsn, stop.lsn > label.lsn ? stop.lsn : label.lsn + 1n, info.walSegmentSize)];
        await awaitArchived(client, info, name, needed, options.archiveCheck.timeoutSeconds, options);
      }
      const manifestRecord = await writeManifest(storage, name, manifest, signal);
      // An incremental's own size and count: its referenced files are counted in the backups holding them.
      const files = manifest.filter((e) => e.type === 'file' && e.ref === undefined);
      const meta: BackupMeta = {
        format: parent ? INCREMENTAL_FORMAT : FULL_FORMAT,
        name,
        ...(parent ? { parent: parent.meta.name, full: parent.full } : {}),
        systemIdentifier: info.systemIdentifier,
        pgVersionNum: info.versionNum,
        pgVersion: info.version,
        walSegmentSize: info.walSegmentSize,
        timeline,
        startLsn: formatLsn(label.lsn),
        stopLsn: formatLsn(stop.lsn),
        startWalSegment: label.walFile,
        stopWalSegment: walSegmentName(timeline, segmentNumberOfEndLsn(stop.lsn, info.walSegmentSize), info.walSegmentSize),
        startTime: startTime.toISOString(),
        stopTime: stopTime.toISOString(),
        rawSize: files.reduce((n, e) => n + e.size, 0),
        storedSize: written.parts.reduce((n, p) => n + p.storedSize, 0),
        fileCount: files.length,
        codec: config.compression,
        parts: written.parts,
        tablespaces: walk.tablespaces,
        backupLabel: stop.backupLabel,
        tablespaceMap: stop.tablespaceMap,
        manifest: manifestRecord,
        gcwalVersion: options.version,
      };
      // A write whose answer was lost and whose retry meets backup.json itself is done.
      await writeOnce(storage, backupMetaKey(name), () => [Buffer.from(serializeBackupMeta(meta))], {
        signal,
        contentType: 'application/json',
        metadata: { [Meta.codec]: 'none' },
      });
      return meta;
    } catch (err) {
      if (!stopped) {
        await stopBackup(client, info.versionNum, false).catch((stopErr) =>
          log.debug('could not stop the backup after the failure; the server aborts it when the session ends', { error: (stopErr as Error).message }),
        );
      }
      throw err;
    }
  } catch (err) {
    if (!signal.aborted) throw err;
    // Whatever failed first (a query on the closed session, an aborted
    // upload) is only a symptom: report the interruption itself.
    const why = signal.reason instanceof Error ? signal.reason.message : 'cancelled';
    throw new GcwalError(
      'interrupted',
      `backup-push ${why}: no backup was recorded`,
      'run gcwal backup-push again; parts already uploaded stay invisible',
      ExitCode.interrupted,
      { cause: err },
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => {});
  }
}
