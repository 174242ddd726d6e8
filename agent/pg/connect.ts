import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { PostgresError } from '../../core/errors.ts';
import type { Config } from '../config.ts';
import { pgpassFile, readPgpass } from './pgpass.ts';

/** libpq's default port. */
const DEFAULT_PORT = 5432;

/**
 * Where libpq builds look for the server's Unix socket when PGHOST is unset
 * (Debian/Ubuntu packages first, then the upstream default).
 */
const SOCKET_DIRS = ['/var/run/postgresql', '/tmp'];

/** A connected session and the connection parameters it used (for messages). */
export interface PgSession {
  client: pg.Client;
  /** `host:port` or `socket-dir:port`, for messages */
  where: string;
}

/**
 * The host to connect to: the configured one, else (like libpq) the first
 * socket directory holding this port's socket, else localhost. `pg` itself
 * would default to TCP localhost, which fails with peer authentication, the
 * usual setup for the postgres OS user.
 */
export function resolvePgHost(host: string | undefined, port: number, exists: (path: string) => boolean = existsSync): string {
  if (host) return host;
  for (const dir of SOCKET_DIRS) {
    if (exists(`${dir}/.s.PGSQL.${port}`)) return dir;
  }
  return 'localhost';
}

/** First line of a driver or server error, for a one-line message. */
function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0];
}

export interface ConnectOptions {
  applicationName?: string;
  signal?: AbortSignal;
  warn?: (message: string) => void;
  /**
   * TLS (agent/pg/conninfo.ts tlsOptionsFor): options to require it, false
   * for none (the default: the local server), 'prefer' to try it and fall
   * back to a plain connection when the server has no TLS, as libpq does.
   */
  tls?: ConnectionOptions | false | 'prefer';
  /** give up connecting after this long; default 30 s */
  connectTimeoutSeconds?: number;
}

/** pg's error when the server answers a TLS request with "no". */
const NO_TLS = 'The server does not support SSL connections';

/**
 * Open one session to PostgreSQL from `config.pg` (host, port, user, database,
 * password; unset values default as libpq does: socket directory, 5432, the OS
 * user, a database named like the user). Every value is passed explicitly so
 * `pg` never falls back to reading the environment behind the config's back.
 * The password is PGPASSWORD's, else, only if the server asks for one, the
 * password file's (`passfile`, else ~/.pgpass; `warn` hears why one is
 * ignored). Throws PostgresError carrying the server's or the socket's
 * message when the connection fails. The caller must `end()` the client.
 */
export async function connectPostgres(config: Config['pg'], options: ConnectOptions = {}): Promise<PgSession> {
  options.signal?.throwIfAborted();
  const port = config.port ?? DEFAULT_PORT;
  const host = resolvePgHost(config.host, port);
  const user = config.user ?? userInfo().username;
  const where = `${host}:${port}`;
  const database = config.database ?? user;
  const fromFile = async (): Promise<string> => {
    const file = pgpassFile(config.passfile);
    const password = await readPgpass(file, { host, port, database, user }, options.warn);
    if (password === undefined)
      throw new PostgresError(
        `the server asks for a password and none is set (no PGPASSWORD, no line for ${host}:${port}:${database}:${user} in ${file})`,
        'set PGPASSWORD or add the line to the password file (PGPASSFILE, default ~/.pgpass, mode 0600)',
      );
    return password;
  };
  const open = async (ssl: ConnectionOptions | false): Promise<pg.Client> => {
    const client = new pg.Client({
      host,
      port,
      user,
      database,
      password: config.password ?? fromFile,
      application_name: options.applicationName ?? 'gcwal',
      connectionTimeoutMillis: (options.connectTimeoutSeconds ?? 30) * 1000,
      // pg names the host for SNI and the certificate check; `servername` in `ssl` (hostaddr) wins.
      ssl,
    });
    // Without a listener, a connection dropped while idle would crash the
    // process; the next query reports the failure instead.
    client.on('error', () => {});
    const abort = () => void client.end().catch(() => {});
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  };
  // As libpq: never TLS over a Unix socket, whatever sslmode says.
  const tls = host.startsWith('/') ? false : (options.tls ?? false);
  try {
    if (tls !== 'prefer') return { client: await open(tls), where };
    try {
      return { client: await open({ rejectUnauthorized: false }), where };
    } catch (err) {
      if (!(err instanceof Error && err.message === NO_TLS)) throw err;
      return { client: await open(false), where };
    }
  } catch (err) {
    options.signal?.throwIfAborted();
    const hint = err instanceof PostgresError ? err.hint : undefined;
    throw new PostgresError(`could not connect to postgresql at ${where} as ${user}: ${firstLine(err)}`, hint, { cause: err });
  }
}

/**
 * Run one statement and return its rows. Any failure (SQL error, lost
 * connection) becomes a PostgresError with the server's message and, for
 * SQL errors, the SQLSTATE; `what` says what we were doing, e.g.
 * "starting the backup".
 */
export async function pgQuery<R extends pg.QueryResultRow = Record<string, unknown>>(
  client: pg.Client,
  what: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  try {
    const result = await client.query<R>(text, values);
    return result.rows;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const sqlstate = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` (sqlstate ${code})` : '';
    throw new PostgresError(`${what} failed: ${firstLine(err)}${sqlstate}`, hintFor(code), { cause: err });
  }
}

/** A hint for the SQLSTATEs a backup commonly meets; the generic one otherwise. */
function hintFor(code: unknown): string | undefined {
  switch (code) {
    case '42501': // insufficient_privilege
      return 'connect as a superuser or a role granted EXECUTE on the backup functions (see docs/host-setup.md)';
    case '55000': // object_not_in_prerequisite_state: wal_level, a backup already running
      return 'check wal_level (replica or logical) and that no other backup is running in this session';
    default:
      return undefined;
  }
}
