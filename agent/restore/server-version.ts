/**
 * Which PostgreSQL major version will start a restored data directory, when
 * backup-fetch can tell: from `--pg-bin DIR` (its `postgres --version`), or
 * from a destination in a packaged layout that names the version
 * (/var/lib/postgresql/<major>/<cluster> on Debian and Ubuntu,
 * /var/lib/pgsql/<major>/data on Red Hat's). A server of another major
 * version refuses the data directory at start ("database files are
 * incompatible with server"), after the whole backup was copied; gcwal
 * refuses before writing anything.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { BackupMeta } from '../../core/backup/meta.ts';
import { UsageError, VersionMismatchError } from '../../core/errors.ts';

const execFileAsync = promisify(execFile);

/** The server a restore is meant for. */
export interface TargetServer {
  major: number;
  /** what says so, for messages: "/usr/lib/postgresql/18/bin/postgres" or "the destination /var/lib/postgresql/18/main" */
  source: string;
}

/** The major version in `postgres --version` output ("postgres (PostgreSQL) 18.4", "... 15.10 (Debian 15.10-1)"), or undefined. */
export function parsePostgresVersionOutput(text: string): number | undefined {
  const m = /\(PostgreSQL\) (\d+)(?:\.\d+|beta|rc|devel)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The major version a packaged layout's data directory path names, or undefined. */
export function majorFromDataDirectoryPath(dest: string): TargetServer | undefined {
  const m = /^\/var\/lib\/(?:postgresql\/(\d+)\/[^/]+|pgsql\/(\d+)\/data)\/?$/.exec(path.normalize(dest));
  if (!m) return undefined;
  return { major: Number(m[1] ?? m[2]), source: `the destination ${dest}` };
}

/** Ask `<binDir>/postgres --version`; UsageError when it cannot be run or does not say. */
export async function readServerMajor(binDir: string): Promise<TargetServer> {
  const program = path.join(binDir, 'postgres');
  const hint = 'give --pg-bin the directory of the postgres program that will start the restore, e.g. /usr/lib/postgresql/18/bin';
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(program, ['--version'], { timeout: 30_000 }));
  } catch (err) {
    throw new UsageError(`--pg-bin: cannot run ${program} (${(err as Error).message.split('\n')[0]})`, hint, { cause: err });
  }
  const major = parsePostgresVersionOutput(stdout);
  if (major === undefined) throw new UsageError(`--pg-bin: ${program} --version printed no PostgreSQL version: ${stdout.trim().split('\n')[0]}`, hint);
  return { major, source: program };
}

/** Refuse (VersionMismatchError) a backup of another major version than `server`'s. */
export function checkBackupForServer(meta: Pick<BackupMeta, 'name' | 'pgVersion' | 'pgVersionNum'>, server: TargetServer): void {
  const backupMajor = Math.floor(meta.pgVersionNum / 10000);
  if (backupMajor === server.major) return;
  throw new VersionMismatchError(
    `backup ${meta.name} is of postgresql ${meta.pgVersion}, but ${server.source} is postgresql ${server.major}`,
    `restore it where PostgreSQL ${backupMajor} will start it (--pg-bin names that server's bin directory) and pg_upgrade it afterwards, or choose a backup taken on PostgreSQL ${server.major}`,
  );
}
