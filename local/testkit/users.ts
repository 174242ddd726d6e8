import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { execOk } from './exec.ts';

/** The account PostgreSQL runs as and the ids needed to hand files to it. */
export interface PostgresUser {
  name: 'postgres';
  uid: number;
  gid: number;
  home: string;
}

/** Whether this test process runs as root, and so must switch to `postgres` for the server. */
export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Look up the `postgres` account (getent, so NSS sources work too). Rejects
 * with an install hint when it does not exist; only needed when running as root.
 */
export async function postgresUser(): Promise<PostgresUser> {
  const { stdout } = await execOk('getent', ['passwd', 'postgres']).catch((err: Error) => {
    throw new Error(`there is no postgres user (${err.message.split('\n')[0]}); install postgresql or create the user`);
  });
  const [name, , uid, gid, , home] = stdout.trim().split(':');
  if (name !== 'postgres') throw new Error(`unexpected getent output: ${stdout.trim()}`);
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/**
 * The program and arguments that run `file args` as the `postgres` user: via
 * runuser when root, directly otherwise (then the current user owns the
 * clusters and plays the part of `postgres`).
 */
export function asPostgres(file: string, args: readonly string[]): [string, string[]] {
  return runningAsRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, [...args]];
}

/**
 * An environment for child processes: this process's environment without
 * libpq (PG*) and gcwal (GCWAL_*) variables, which would otherwise leak from
 * the developer's shell into a test, plus `extra`. With `forPostgres` and root,
 * HOME is the postgres user's home, as under a real service manager.
 */
export async function childEnv(extra: Readonly<Record<string, string | undefined>> = {}, forPostgres = false): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(PG|GCWAL_)/.test(key)) continue;
    env[key] = value;
  }
  if (forPostgres && runningAsRoot()) env.HOME = (await postgresUser()).home;
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Reject unless `target` (a file or directory) can be reached by other users:
 * every ancestor directory searchable (o+x) and the target itself readable or
 * executable as `need` says. When root runs the tests from /root, PostgreSQL's
 * archive_command (running as postgres) cannot enter it; this says so up front
 * instead of leaving a test to fail with EACCES in the server log.
 */
export async function assertReachableByOthers(target: string, need: 'read' | 'execute' | 'enter', hint: string): Promise<void> {
  const real = await realpath(target);
  const mode = (await stat(real)).mode;
  const bit = need === 'read' ? 0o004 : 0o001;
  if (!(mode & bit))
    throw new Error(
      `${real} is not ${need === 'read' ? 'readable' : need === 'execute' ? 'executable' : 'enterable'} by other users (mode ${(mode & 0o777).toString(8)}); ${hint}`,
    );
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    if (!((await stat(dir)).mode & 0o001))
      throw new Error(`directory ${dir} is not enterable by other users, so the postgres user cannot reach ${real}; ${hint}`);
    if (dir === path.dirname(dir)) break;
  }
}
