/**
 * backup-push on a standby, reaching the primary (GCWAL_PRIMARY_CONNINFO).
 * A standby cannot run pg_switch_wal(): the segment its backup stops in is
 * archived only once the primary leaves it, which on a quiet primary is at
 * archive_timeout or never. With the primary's connection string the backup
 * switches it there as soon as it stops, so the wait for the WAL is short.
 */
import type pg from 'pg';
import { ClusterMismatchError, PostgresError, UsageError } from '../../core/errors.ts';
import { formatLsn } from '../../core/wal/lsn.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { connectPostgres, pgQuery, type PgSession } from '../pg/connect.ts';
import { tlsOptionsFor, type PrimaryConninfo } from '../pg/conninfo.ts';

export interface PrimaryOptions {
  primary: PrimaryConninfo;
  /** PGPASSFILE: the password file when the connection string names none */
  passfile: Config['pg']['passfile'];
  log: Logger;
  signal: AbortSignal;
}

/** Open a session on the primary; PostgresError says it was the primary's connection that failed. */
async function connectPrimary(o: PrimaryOptions): Promise<PgSession> {
  const p = o.primary;
  try {
    return await connectPostgres(
      { host: p.hostaddr ?? p.host, port: p.port, user: p.user, database: p.database, password: p.password, passfile: p.passfile ?? o.passfile },
      {
        applicationName: 'gcwal backup-push',
        signal: o.signal,
        warn: (m) => o.log.warn(m),
        tls: await tlsOptionsFor(p),
        connectTimeoutSeconds: p.connectTimeoutSeconds,
      },
    );
  } catch (err) {
    if (!(err instanceof PostgresError)) throw err;
    throw new PostgresError(
      `GCWAL_PRIMARY_CONNINFO: ${err.message}`,
      "check the primary's connection string (host, port, user, dbname; the password in ~/.pgpass) and its pg_hba.conf",
      { cause: err },
    );
  }
}

/**
 * Before the backup starts: the connection string reaches a primary (not in
 * recovery) of the standby's cluster, as a role that may run pg_switch_wal(),
 * so a wrong setting fails in a second instead of after the copy. Throws
 * PostgresError (cannot connect, no privilege), UsageError (a standby),
 * ClusterMismatchError (another cluster).
 */
export async function checkPrimary(o: PrimaryOptions, systemIdentifier: string): Promise<string> {
  const { client, where } = await connectPrimary(o);
  try {
    const [row] = await pgQuery<{ in_recovery: boolean; system_identifier: string; may_switch: boolean }>(
      client,
      "reading the primary's state",
      `SELECT pg_is_in_recovery() AS in_recovery,
              (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
              has_function_privilege('pg_switch_wal()', 'EXECUTE') AS may_switch`,
    );
    if (row.in_recovery) {
      throw new UsageError(
        `GCWAL_PRIMARY_CONNINFO reaches ${where}, which is in recovery too: only the primary can switch wal segments`,
        'point GCWAL_PRIMARY_CONNINFO at the primary',
      );
    }
    if (row.system_identifier !== systemIdentifier) {
      throw new ClusterMismatchError(
        `GCWAL_PRIMARY_CONNINFO reaches ${where}, a server of cluster ${row.system_identifier}, not of this standby's cluster ${systemIdentifier}`,
        "point GCWAL_PRIMARY_CONNINFO at this standby's primary",
      );
    }
    if (!row.may_switch) {
      throw new PostgresError(
        `GCWAL_PRIMARY_CONNINFO: the role on the primary at ${where} may not run pg_switch_wal()`,
        'connect as a superuser, or GRANT EXECUTE ON FUNCTION pg_switch_wal() TO the role on the primary',
      );
    }
    return where;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * After the backup stopped at `stopLsn`: switch the primary's WAL segment
 * unless it already left the one `stopLsn` ends in (then that segment is
 * complete and on its way). A new session, since a backup can take hours.
 * Resolves with the LSN the switch record ended at, or undefined when no
 * switch was needed; never rejects: a failure is only logged, as the WAL may
 * still come with the primary's archive_timeout.
 */
export async function switchWalOnPrimary(o: PrimaryOptions, stopSegmentEnd: bigint): Promise<string | undefined> {
  let session: PgSession | undefined;
  try {
    session = await connectPrimary(o);
    const switched = await switchIfBefore(session.client, stopSegmentEnd);
    if (switched) o.log.info(`switched wal on the primary at ${session.where} so that the last segment the backup needs is archived`, { switchLsn: switched });
    else o.log.debug('the primary has already left the segment the backup stops in', { segmentEnd: formatLsn(stopSegmentEnd) });
    return switched;
  } catch (err) {
    o.signal.throwIfAborted();
    o.log.warn(`could not switch wal on the primary: ${(err as Error).message}; waiting for the primary to switch segments by itself (archive_timeout)`);
    return undefined;
  } finally {
    await session?.client.end().catch(() => {});
  }
}

/** pg_switch_wal() only while the primary still writes before `lsn`: once past it the segment is complete, and a switch would only waste the rest of the current one. */
async function switchIfBefore(client: pg.Client, lsn: bigint): Promise<string | undefined> {
  const [row] = await pgQuery<{ switched: string | null }>(
    client,
    'switching wal on the primary',
    'SELECT CASE WHEN pg_current_wal_lsn() < $1::pg_lsn THEN pg_switch_wal()::text END AS switched',
    [formatLsn(lsn)],
  );
  return row.switched ?? undefined;
}
