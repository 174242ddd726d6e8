/**
 * A libpq connection string (GCWAL_PRIMARY_CONNINFO): how backup-push on a
 * standby reaches the primary to switch its WAL segment. Both forms libpq
 * takes are read, `host=db1 port=5432 user=postgres` and
 * `postgresql://postgres@db1:5432/postgres`, so the standby's own
 * primary_conninfo can be pasted (pg_basebackup -R writes a dozen keywords
 * that only matter to libpq; they are accepted and have no effect here).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { UsageError } from '../../core/errors.ts';

/** libpq's sslmode values; gcwal treats `allow` as `disable` (no TLS unless required). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** What backup-push needs to open a session on the primary. */
export interface PrimaryConninfo {
  /** the server's name (or socket directory): what verify-full checks the certificate against */
  host: string | undefined;
  /** the address to connect to instead of resolving `host`, as libpq's hostaddr */
  hostaddr: string | undefined;
  port: number | undefined;
  user: string | undefined;
  database: string | undefined;
  /** the conninfo's password=, allowed only in the environment variable */
  password: string | undefined;
  /** the conninfo's passfile=; else PGPASSFILE, else ~/.pgpass */
  passfile: string | undefined;
  /** default prefer, as libpq */
  sslmode: SslMode;
  sslrootcert: string | undefined;
  sslcert: string | undefined;
  sslkey: string | undefined;
  connectTimeoutSeconds: number | undefined;
}

/** Keywords that shape the session gcwal opens. */
const USED = new Set(['host', 'hostaddr', 'port', 'user', 'dbname', 'password', 'passfile', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connect_timeout']);

/** libpq keywords accepted and left alone: they tune libpq itself, or name what gcwal sets on its own. */
const IGNORED = new Set([
  'application_name',
  'fallback_application_name',
  'options',
  'client_encoding',
  'replication',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'sslcompression',
  'sslsni',
  'ssl_min_protocol_version',
  'ssl_max_protocol_version',
  'sslcertmode',
  'sslnegotiation',
  'sslpassword',
  'sslcrl',
  'sslcrldir',
  'gssencmode',
  'krbsrvname',
  'gsslib',
  'gssdelegation',
  'channel_binding',
  'require_auth',
  'requirepeer',
  'target_session_attrs',
  'load_balance_hosts',
]);

const HINT = "give a libpq connection string, e.g. GCWAL_PRIMARY_CONNINFO='host=db1 port=5432 user=postgres dbname=postgres' (the password in ~/.pgpass)";

/**
 * Split a keyword/value connection string as libpq does: `key = value`
 * pairs separated by white space, a value in single quotes when it holds
 * spaces, a backslash escaping the next character. Throws UsageError naming
 * the keyword (never a value: it may be a password).
 */
export function splitKeywordValue(text: string, variable: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  for (skipSpace(); i < text.length; skipSpace()) {
    const keyStart = i;
    while (i < text.length && text[i] !== '=' && !/\s/.test(text[i])) i++;
    const key = text.slice(keyStart, i);
    skipSpace();
    if (text[i] !== '=') throw new UsageError(`${variable}: missing "=" after "${key}"`, HINT);
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      for (i++; ; i++) {
        if (i >= text.length) throw new UsageError(`${variable}: unterminated quoted value for ${key}`, HINT);
        if (text[i] === "'") break;
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
      }
      i++;
    } else {
      for (; i < text.length && !/\s/.test(text[i]); i++) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
      }
    }
    out.set(key, value);
  }
  return out;
}

/** Split a `postgresql://` or `postgres://` URI into libpq keywords (one host only). */
export function splitUri(text: string, variable: string): Map<string, string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${variable} is not a valid postgresql:// URI`, HINT);
  }
  const out = new Map<string, string>();
  const decode = (s: string) => decodeURIComponent(s);
  if (url.hostname.includes(',')) throw new UsageError(`${variable} names several hosts`, 'give the primary only: backup-push switches WAL there');
  if (url.hostname) out.set('host', decode(url.hostname.replace(/^\[(.*)\]$/, '$1')));
  if (url.port) out.set('port', url.port);
  if (url.username) out.set('user', decode(url.username));
  if (url.password) out.set('password', decode(url.password));
  if (url.pathname.length > 1) out.set('dbname', decode(url.pathname.slice(1)));
  for (const [key, value] of url.searchParams) out.set(key, value);
  return out;
}

function intIn(value: string, key: string, variable: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${variable}: ${key} must be an integer from ${min} to ${max}`, HINT);
  return n;
}

/**
 * Read GCWAL_PRIMARY_CONNINFO (`variable` names where it came from, for
 * messages). `fromFlag`: given as --primary-conninfo, where a password is
 * refused because every user of the host sees a command line (ps). Throws
 * UsageError for a malformed string, a keyword libpq does not know, several
 * hosts, or `service` (gcwal reads no pg_service.conf); never with the
 * password in the message.
 */
export function parsePrimaryConninfo(text: string, options: { variable: string; fromFlag: boolean }): PrimaryConninfo {
  const { variable } = options;
  const pairs = /^postgres(ql)?:\/\//.test(text.trim()) ? splitUri(text.trim(), variable) : splitKeywordValue(text, variable);
  for (const key of pairs.keys()) {
    if (key === 'service')
      throw new UsageError(`${variable}: service is not supported (gcwal reads no pg_service.conf)`, 'give host, port, user and dbname instead');
    if (!USED.has(key) && !IGNORED.has(key)) throw new UsageError(`${variable}: unknown keyword "${key}"`, HINT);
  }
  if (options.fromFlag && pairs.has('password')) {
    throw new UsageError(
      `${variable} carries a password: a command line is visible to every user of the host (ps)`,
      'put the password in ~/.pgpass (or the file PGPASSFILE or passfile= names), or set GCWAL_PRIMARY_CONNINFO in the environment',
    );
  }
  const host = pairs.get('host') || undefined;
  const hostaddr = pairs.get('hostaddr') || undefined;
  if (host?.includes(',') || hostaddr?.includes(','))
    throw new UsageError(`${variable} names several hosts`, 'give the primary only: backup-push switches WAL there');
  const sslmode = pairs.get('sslmode') ?? 'prefer';
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) throw new UsageError(`${variable}: sslmode must be one of ${SSL_MODES.join(', ')}`, HINT);
  const port = pairs.get('port');
  const timeout = pairs.get('connect_timeout');
  return {
    host,
    hostaddr,
    port: port ? intIn(port, 'port', variable, 1, 65535) : undefined,
    user: pairs.get('user') || undefined,
    database: pairs.get('dbname') || undefined,
    password: pairs.get('password'),
    passfile: pairs.get('passfile') || undefined,
    sslmode: sslmode as SslMode,
    sslrootcert: pairs.get('sslrootcert') || undefined,
    sslcert: pairs.get('sslcert') || undefined,
    sslkey: pairs.get('sslkey') || undefined,
    // libpq treats 0 as "no limit" and anything under 2 s as 2 s.
    connectTimeoutSeconds: timeout ? Math.max(intIn(timeout, 'connect_timeout', variable, 0, 86_400), 2) : undefined,
  };
}

/**
 * The TLS options for `pg` from sslmode, or false for none; 'prefer' tries
 * TLS and falls back (connectPostgres). require encrypts without verifying;
 * verify-ca checks the chain against sslrootcert (default
 * ~/.postgresql/root.crt when it exists, else, or with sslrootcert=system,
 * the default roots), verify-full the host name too. Rejects when a named certificate file cannot be read.
 */
export async function tlsOptionsFor(c: PrimaryConninfo): Promise<ConnectionOptions | false | 'prefer'> {
  if (c.sslmode === 'disable' || c.sslmode === 'allow') return false;
  if (c.sslmode === 'prefer') return 'prefer';
  const tls: ConnectionOptions = { rejectUnauthorized: c.sslmode !== 'require' };
  // Connecting to hostaddr, the certificate still names host (SNI must not be an address).
  if (c.hostaddr && c.host && !c.host.startsWith('/') && net.isIP(c.host) === 0) tls.servername = c.host;
  if (c.sslcert) tls.cert = await readPem(c.sslcert, 'sslcert', "the client certificate the primary's pg_hba.conf asks for");
  if (c.sslkey) tls.key = await readPem(c.sslkey, 'sslkey', 'the key of sslcert, readable by this user only');
  if (c.sslmode === 'require') return tls;
  // sslrootcert=system (libpq 16+): the default roots.
  if (c.sslrootcert === 'system') return withIdentityCheck(tls, c.sslmode);
  const defaultRoot = path.join(homedir(), '.postgresql', 'root.crt');
  const root = c.sslrootcert ?? defaultRoot;
  const ca =
    c.sslrootcert === undefined && !existsSync(defaultRoot) ? undefined : await readPem(root, 'sslrootcert', "the CA that signed the primary's certificate");
  if (ca) tls.ca = ca;
  return withIdentityCheck(tls, c.sslmode);
}

/** A PEM file the connection string names; UsageError naming the keyword when it cannot be read. */
async function readPem(file: string, keyword: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read ${keyword} ${file} (${(err as NodeJS.ErrnoException).code})`, `name a readable PEM file of ${what}`);
  }
}

/** verify-ca trusts any name on a certificate the CA signed; verify-full keeps Node's host name check. */
function withIdentityCheck(tls: ConnectionOptions, mode: SslMode): ConnectionOptions {
  if (mode === 'verify-ca') tls.checkServerIdentity = () => undefined;
  return tls;
}
