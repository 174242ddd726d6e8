import { existsSync } from 'node:fs';
import { appendFile, chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { exec, execOk, type ExecResult } from './exec.ts';
import { pgBinDirFor, pgProgram, type PgMajor } from './pgbin.ts';
import { freePort } from '../process/port.ts';
import { makeTempDir, type TempDir } from './tmp.ts';
import { asPostgres, childEnv, runningAsRoot } from './users.ts';

/** A value for postgresql.conf: strings are quoted, booleans become on/off. */
export type Setting = string | number | boolean;

export interface ServerOptions {
  /** extra postgresql.conf settings (fresh cluster) or postgresql.auto.conf lines (restored directory) */
  settings?: Readonly<Record<string, Setting>>;
  /**
   * Variables added to the server's environment, which archive_command and
   * restore_command inherit (e.g. GCWAL_REPO). PG* and GCWAL_* variables of
   * this process are never passed on.
   */
  serverEnv?: Readonly<Record<string, string>>;
  /** seconds pg_ctl waits for start, stop and promote; default 60 */
  timeoutSeconds?: number;
  /**
   * the PostgreSQL major version whose initdb, pg_ctl and server run it
   * (pgbin.ts's pgBinDirFor: 15 is Debian's, others the builds in
   * node_modules); default the suite's server ({@link pgProgram})
   */
  pgMajor?: PgMajor;
}

export interface ClusterOptions extends ServerOptions {
  /** archive_command; without it archive_mode is on but archiving unconfigured (segments stay .ready) */
  archiveCommand?: string;
  /** archive_timeout in seconds */
  archiveTimeout?: number;
  /** initdb --wal-segsize, in MiB (power of two, 1..1024); default 16 */
  walSegSizeMB?: number;
  /** further initdb arguments, e.g. ['--data-checksums'] (after the defaults, so they override them) */
  initdbArgs?: readonly string[];
  /** keep fsync on (default off: these clusters are thrown away and speed matters) */
  fsync?: boolean;
  /** max_wal_senders; default 4 */
  maxWalSenders?: number;
}

export interface StartFromDirectoryOptions extends ServerOptions {
  /** wait until the server accepts connections (pg_ctl -w); default true. Use false for a recovery that shuts down. */
  wait?: boolean;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

/** A PostgreSQL server in a temp directory, run by the postgres user. */
export interface Cluster {
  /** the data directory */
  readonly pgdata: string;
  /** TCP port on 127.0.0.1 */
  readonly port: number;
  /** the unix socket directory, for PGHOST */
  readonly host: string;
  /** the server log (pg_ctl -l) */
  readonly logFile: string;
  /** PGHOST, PGPORT, PGUSER=postgres, PGDATABASE=postgres: pass to gcwal */
  readonly env: Readonly<Record<string, string>>;
  /** run one statement on a new connection; resolves with its rows */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** start a stopped server and wait until it accepts connections */
  start(): Promise<void>;
  /** stop the server (default mode fast); resolves at once when it is not running */
  stop(mode?: StopMode): Promise<void>;
  /** pg_ctl promote -w: end recovery and wait for it */
  promote(): Promise<void>;
  /** whether a postmaster is running on the data directory */
  isRunning(): Promise<boolean>;
  /** SELECT pg_is_in_recovery() */
  isInRecovery(): Promise<boolean>;
  /** poll until recovery has ended; rejects with the log tail when the server exits or time runs out (default 60 s) */
  waitForRecoveryEnd(timeoutMs?: number): Promise<void>;
  /** SELECT pg_switch_wal(); resolves with the name of the segment it closed (the next to be archived) */
  switchWal(): Promise<string>;
  /**
   * Poll until a WAL file (by name, e.g. '000000010000000000000003' or
   * '00000002.history') has been archived, or until pg_stat_archiver counts
   * `count` archived files; default timeout 30 s. Rejects with the archiver's
   * last failure and the log tail.
   */
  waitForArchived(target: string | number, timeoutMs?: number): Promise<void>;
  /** the last `lines` lines of the server log (default 40) */
  logTail(lines?: number): Promise<string>;
  /** stop (immediate) and remove the temp directory; for a fresh cluster that includes pgdata. Safe to call twice. */
  destroy(): Promise<void>;
}

/**
 * initdb a new cluster in a fresh temp directory owned by postgres (data in
 * <dir>/data, socket and log in <dir>), configure it for WAL archiving, and
 * start it on a free loopback port. Rejects with initdb's output or the
 * server log tail when that fails.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binDir = await serverBinDir(options);
  const tmp = await makeTempDir('pg', { owner: 'postgres' });
  const pgdata = path.join(tmp.path, 'data');
  try {
    const initdbArgs = ['-D', pgdata, '--auth=trust', '-U', 'postgres', '--no-sync', '--locale=C', '--encoding=UTF8'];
    if (options.walSegSizeMB !== undefined) initdbArgs.push(`--wal-segsize=${options.walSegSizeMB}`);
    initdbArgs.push(...(options.initdbArgs ?? []));
    await runAsPostgres(binDir ? path.join(binDir, 'initdb') : pgProgram('initdb'), initdbArgs, tmp.path);

    const settings: Record<string, Setting> = {
      wal_level: 'replica',
      archive_mode: 'on',
      max_wal_senders: options.maxWalSenders ?? 4,
      fsync: options.fsync ?? false,
      // Several clusters run at once on a small CI machine.
      shared_buffers: '32MB',
      max_connections: 30,
    };
    if (options.archiveCommand !== undefined) settings.archive_command = options.archiveCommand;
    if (options.archiveTimeout !== undefined) settings.archive_timeout = options.archiveTimeout;
    await appendSettings(path.join(pgdata, 'postgresql.conf'), { ...settings, ...options.settings });
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  return startOrDestroy(new TestCluster(tmp, pgdata, options, binDir), true);
}

/**
 * Start a server on an existing data directory (e.g. one gcwal restored):
 * chown it to postgres when root and chmod 0700 (PostgreSQL refuses group or
 * world access), append `settings` to its postgresql.auto.conf, and start it
 * with port, socket directory and listen address given on the command line,
 * so the copied configuration of the source cluster cannot clash with it.
 * The socket and log live in a new temp directory; destroy() removes that
 * but leaves `pgdata` to its owner.
 */
export async function startClusterFromDirectory(pgdata: string, options: StartFromDirectoryOptions = {}): Promise<Cluster> {
  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) throw new Error(`${pgdata} is not a PostgreSQL data directory (no PG_VERSION)`);
  const binDir = await serverBinDir(options);
  const tmp = await makeTempDir('pg', { owner: 'postgres' });
  try {
    if (options.settings) await appendSettings(path.join(pgdata, 'postgresql.auto.conf'), options.settings);
    if (runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', pgdata]);
    await chmod(pgdata, 0o700);
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  return startOrDestroy(new TestCluster(tmp, pgdata, options, binDir), options.wait ?? true);
}

/** The bin directory of `options.pgMajor`, or undefined for the suite's default server. */
async function serverBinDir(options: ServerOptions): Promise<string | undefined> {
  return options.pgMajor === undefined ? undefined : pgBinDirFor(options.pgMajor);
}

/**
 * Start, or clean up and rethrow: pg_ctl can give up waiting while the server
 * keeps starting, and a server must not be left running on a removed directory.
 */
async function startOrDestroy(cluster: TestCluster, wait: boolean): Promise<Cluster> {
  try {
    await cluster.startOnFreePort(wait);
    return cluster;
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}

class TestCluster implements Cluster {
  readonly host: string;
  readonly logFile: string;
  port = 0;

  constructor(
    private readonly tmp: TempDir,
    readonly pgdata: string,
    private readonly options: ServerOptions,
    /** where pg_ctl and the server come from; default pgProgram's directory */
    private readonly binDir?: string,
  ) {
    this.host = tmp.path;
    this.logFile = path.join(tmp.path, 'server.log');
  }

  get env(): Record<string, string> {
    return { PGHOST: this.host, PGPORT: String(this.port), PGUSER: 'postgres', PGDATABASE: 'postgres' };
  }

  /** Pick a port and start; another process can grab the port first, so retry a few times on "address in use". */
  async startOnFreePort(wait = true): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.port = await freePort();
      const result = await this.pgCtl(['start', ...(wait ? ['-w'] : ['-W']), '-l', this.logFile, '-o', this.serverFlags()]);
      if (result.code === 0) return;
      const tail = await this.logTail();
      if (attempt < 3 && /could not bind|address already in use/i.test(tail)) continue;
      throw new Error(`cannot start PostgreSQL on ${this.pgdata} (port ${this.port}): ${firstLine(result)}\n--- server log ---\n${tail}`);
    }
  }

  /** Per-instance settings on the postgres command line: they override every configuration file. */
  private serverFlags(): string {
    if (/[\s'"\\]/.test(this.host)) throw new Error(`socket directory ${this.host} contains spaces or quotes; set TMPDIR to a plainer path`);
    return `-p ${this.port} -k ${this.host} -c listen_addresses=127.0.0.1`;
  }

  private async pgCtl(args: string[]): Promise<ExecResult> {
    const timeout = String(this.options.timeoutSeconds ?? 60);
    const [file, argv] = asPostgres(this.binDir ? path.join(this.binDir, 'pg_ctl') : pgProgram('pg_ctl'), ['-D', this.pgdata, '-t', timeout, ...args]);
    const env = await childEnv({ ...this.options.serverEnv }, true);
    return exec(file, argv, { env, cwd: this.tmp.path, timeoutMs: (Number(timeout) + 30) * 1000 });
  }

  async query<R = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ host: this.host, port: this.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      return (await client.query(sql, params as unknown[])).rows as R[];
    } finally {
      await client.end();
    }
  }

  async start(): Promise<void> {
    const result = await this.pgCtl(['start', '-w', '-l', this.logFile, '-o', this.serverFlags()]);
    if (result.code !== 0) throw new Error(`cannot start PostgreSQL on ${this.pgdata}: ${firstLine(result)}\n--- server log ---\n${await this.logTail()}`);
  }

  async stop(mode: StopMode = 'fast'): Promise<void> {
    if (!(await this.isRunning())) return;
    const result = await this.pgCtl(['stop', '-w', '-m', mode]);
    if (result.code !== 0) throw new Error(`cannot stop PostgreSQL on ${this.pgdata}: ${firstLine(result)}\n--- server log ---\n${await this.logTail()}`);
  }

  async promote(): Promise<void> {
    const result = await this.pgCtl(['promote', '-w']);
    if (result.code !== 0) throw new Error(`cannot promote ${this.pgdata}: ${firstLine(result)}\n--- server log ---\n${await this.logTail()}`);
  }

  async isRunning(): Promise<boolean> {
    // pg_ctl status: 0 running, 3 not running, 4 no data directory.
    return (await this.pgCtl(['status'])).code === 0;
  }

  async isInRecovery(): Promise<boolean> {
    const [row] = await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return row.r;
  }

  async waitForRecoveryEnd(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        if (!(await this.isInRecovery())) return;
        last = 'still in recovery';
      } catch (err) {
        // "the database system is starting up" and the like: retry, unless the server is gone.
        last = (err as Error).message;
        if (!(await this.isRunning())) throw new Error(`PostgreSQL exited before recovery ended: ${last}\n--- server log ---\n${await this.logTail()}`);
      }
      await sleep(100);
    }
    throw new Error(`recovery did not end within ${timeoutMs} ms (${last})\n--- server log ---\n${await this.logTail()}`);
  }

  async switchWal(): Promise<string> {
    const [row] = await this.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return row.name;
  }

  async waitForArchived(target: string | number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let stats: ArchiverStats | undefined;
    while (Date.now() < deadline) {
      if (typeof target === 'string' && this.statusFileExists(target, 'done')) return;
      stats = await this.archiverStats().catch(() => stats);
      const ready = typeof target === 'string' && this.statusFileExists(target, 'ready');
      if (stats && archived(target, stats, ready)) return;
      await sleep(50);
    }
    const what = typeof target === 'string' ? target : `${target} WAL files`;
    const detail = stats
      ? `archived_count=${stats.archived_count} last_archived_wal=${stats.last_archived_wal} failed_count=${stats.failed_count} last_failed_wal=${stats.last_failed_wal}`
      : 'pg_stat_archiver could not be read';
    throw new Error(`${what} not archived within ${timeoutMs} ms (${detail})\n--- server log ---\n${await this.logTail()}`);
  }

  private statusFileExists(name: string, kind: 'ready' | 'done'): boolean {
    return existsSync(path.join(this.pgdata, 'pg_wal', 'archive_status', `${name}.${kind}`));
  }

  private async archiverStats(): Promise<ArchiverStats> {
    const [row] = await this.query<ArchiverStats>('SELECT archived_count::int, last_archived_wal, failed_count::int, last_failed_wal FROM pg_stat_archiver');
    return row;
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '(no server log)');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => {});
    // A fresh cluster's pgdata is inside tmp; a restored one belongs to the caller.
    await this.tmp.cleanup();
  }
}

interface ArchiverStats {
  archived_count: number;
  last_archived_wal: string | null;
  failed_count: number;
  last_failed_wal: string | null;
}

/**
 * Whether pg_stat_archiver shows `target` archived. A segment name counts once
 * the archiver has reached it (24-hex names sort in WAL order, timeline first)
 * and its .ready file is gone; other names (history, backup files) only by
 * being the last archived file.
 */
function archived(target: string | number, stats: ArchiverStats, readyExists: boolean): boolean {
  if (typeof target === 'number') return stats.archived_count >= target;
  if (readyExists || stats.last_archived_wal === null) return false;
  if (stats.last_archived_wal === target) return true;
  const segment = /^[0-9A-F]{24}$/;
  return segment.test(target) && segment.test(stats.last_archived_wal) && stats.last_archived_wal > target;
}

/** Run a set-up program as postgres; reject with its output when it fails. */
async function runAsPostgres(program: string, args: string[], cwd: string): Promise<void> {
  const [file, argv] = asPostgres(program, args);
  await execOk(file, argv, { env: await childEnv({}, true), cwd });
}

/** Append settings (later lines win over earlier ones in PostgreSQL's configuration files). */
async function appendSettings(file: string, settings: Readonly<Record<string, Setting>>): Promise<void> {
  const lines = Object.entries(settings).map(([key, value]) => `${key} = ${formatSetting(value)}`);
  await appendFile(file, `\n# added by the gcwal test harness\n${lines.join('\n')}\n`);
}

function formatSetting(value: Setting): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') return String(value);
  return `'${value.replaceAll("'", "''")}'`;
}

function firstLine(result: ExecResult): string {
  return (result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`).split('\n')[0];
}
