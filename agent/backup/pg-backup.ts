import type pg from 'pg';
import { InvalidInputError, PostgresError } from '../../core/errors.ts';
import { parseLsn } from '../../core/wal/lsn.ts';
import { pgQuery } from '../pg/connect.ts';

/** Oldest server version backup-push supports (non-exclusive API with these signatures). */
export const MIN_PG_VERSION_NUM = 130000;

/** What backup-push needs to know about the server before starting. */
export interface ClusterInfo {
  /** server_version_num, e.g. 150010 */
  versionNum: number;
  /** e.g. "15.10" (the distribution suffix dropped) */
  version: string;
  /** major version, e.g. 15 */
  major: number;
  /** pg_control system identifier, decimal */
  systemIdentifier: string;
  walSegmentSize: number;
  dataDirectory: string;
  inRecovery: boolean;
  /** archive_mode setting: off, on, always */
  archiveMode: string;
}

/** Where pg_backup_start left us. */
export interface BackupStart {
  lsn: bigint;
  timeline: number;
}

/** What pg_backup_stop returned. */
export interface BackupStop {
  lsn: bigint;
  /** contents for the restored data directory's backup_label */
  backupLabel: string;
  /** contents for tablespace_map (empty without tablespaces) */
  tablespaceMap: string;
}

const SIZE_UNITS: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Parse a GUC memory value as SHOW prints it (`16MB`, `1GB`, `1048576`) into bytes. */
export function parseGucBytes(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB)?$/.exec(text.trim());
  if (!m) throw new PostgresError(`unexpected wal_segment_size "${text}"`, 'this is a bug in gcwal; please report it with your PostgreSQL version');
  return Number(m[1]) * SIZE_UNITS[m[2] ?? 'B'];
}

/** "15.10 (Debian 15.10-1.pgdg120+1)" → "15.10". */
export function shortVersion(serverVersion: string): string {
  return serverVersion.split(/\s/)[0];
}

/**
 * Read what the backup needs from the server in one statement: version,
 * system identifier, WAL segment size, data directory, recovery state.
 * Throws PostgresError for servers older than 13 and for failed queries
 * (reading data_directory needs a superuser or pg_read_all_settings).
 */
export async function readClusterInfo(client: pg.Client): Promise<ClusterInfo> {
  const [row] = await pgQuery<{
    version_num: string;
    version: string;
    system_identifier: string;
    wal_segment_size: string;
    data_directory: string;
    in_recovery: boolean;
    archive_mode: string;
  }>(
    client,
    'reading the server settings',
    `SELECT current_setting('server_version_num') AS version_num,
            current_setting('server_version') AS version,
            (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
            current_setting('wal_segment_size') AS wal_segment_size,
            current_setting('data_directory') AS data_directory,
            pg_is_in_recovery() AS in_recovery,
            current_setting('archive_mode') AS archive_mode`,
  );
  const versionNum = Number(row.version_num);
  if (versionNum < MIN_PG_VERSION_NUM) {
    throw new PostgresError(`postgresql ${shortVersion(row.version)} is not supported`, 'gcwal backs up PostgreSQL 13 and later');
  }
  return {
    versionNum,
    version: shortVersion(row.version),
    major: Math.floor(versionNum / 10000),
    systemIdentifier: row.system_identifier,
    walSegmentSize: parseGucBytes(row.wal_segment_size),
    dataDirectory: row.data_directory,
    inRecovery: row.in_recovery,
    archiveMode: row.archive_mode,
  };
}

/**
 * Start a non-exclusive backup on this session with an immediate checkpoint
 * (pg_backup_start on 15+, pg_start_backup before). The session must stay
 * open until stopBackup: PostgreSQL aborts the backup when it ends. The
 * timeline is the one of the checkpoint the start just wrote.
 */
export async function startBackup(client: pg.Client, versionNum: number, label: string): Promise<BackupStart> {
  const sql = versionNum >= 150000 ? 'SELECT pg_backup_start($1, true)::text AS lsn' : 'SELECT pg_start_backup($1, true, false)::text AS lsn';
  const [start] = await pgQuery<{ lsn: string }>(client, 'starting the backup', sql, [label]);
  const [checkpoint] = await pgQuery<{ timeline_id: number }>(client, 'reading the checkpoint timeline', 'SELECT timeline_id FROM pg_control_checkpoint()');
  return { lsn: parseLsn(start.lsn), timeline: Number(checkpoint.timeline_id) };
}

/**
 * Stop the backup started on this session. With `waitForArchive` the call
 * returns only once the WAL the backup needs is archived, and waits for that
 * without end when archiving fails; backup-push passes false and waits for
 * the WAL in the repository itself, with a timeout (see archive-wait.ts). On
 * a primary the stop switches to a new WAL segment either way, so the stop
 * segment is handed to archive_command at once.
 */
export async function stopBackup(client: pg.Client, versionNum: number, waitForArchive: boolean): Promise<BackupStop> {
  const sql =
    versionNum >= 150000
      ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_backup_stop($1)'
      : 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_stop_backup(false, $1)';
  const [row] = await pgQuery<{ lsn: string; labelfile: string | null; spcmapfile: string | null }>(client, 'stopping the backup', sql, [waitForArchive]);
  return { lsn: parseLsn(row.lsn), backupLabel: row.labelfile ?? '', tablespaceMap: row.spcmapfile ?? '' };
}

/** pg_stat_archiver: what this server's archiver last did (counts since the statistics were reset). */
export interface ArchiverStatus {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
}

/** Read pg_stat_archiver. Throws PostgresError when the query fails. */
export async function readArchiverStatus(client: pg.Client): Promise<ArchiverStatus> {
  const [row] = await pgQuery<{
    archived_count: string;
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
  }>(
    client,
    'reading pg_stat_archiver',
    'SELECT archived_count::text, last_archived_wal, last_archived_time, failed_count::text, last_failed_wal, last_failed_time FROM pg_stat_archiver',
  );
  return {
    archivedCount: Number(row.archived_count),
    lastArchivedWal: row.last_archived_wal,
    lastArchivedTime: row.last_archived_time,
    failedCount: Number(row.failed_count),
    lastFailedWal: row.last_failed_wal,
    lastFailedTime: row.last_failed_time,
  };
}

/** What a backup_label says about where the backup starts. */
export interface LabelStart {
  /** WAL file holding the start LSN */
  walFile: string;
  lsn: bigint;
  /** START TIMELINE (PostgreSQL 11+) */
  timeline: number | undefined;
}

/**
 * Read "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)" and
 * "START TIMELINE: 1" from a backup_label. Throws InvalidInputError when the
 * first line is missing (not a backup label).
 */
export function parseBackupLabel(label: string): LabelStart {
  const m = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(label);
  if (!m)
    throw new InvalidInputError(
      'backup label from the server has no START WAL LOCATION line',
      'this is a bug in gcwal or an unsupported PostgreSQL version; please report it',
    );
  const t = /^START TIMELINE: (\d+)$/m.exec(label);
  return { lsn: parseLsn(m[1]), walFile: m[2], timeline: t ? Number(t[1]) : undefined };
}
