import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const DEBIAN_ROOT = '/usr/lib/postgresql';

/**
 * The absolute path of a PostgreSQL server program (initdb, pg_ctl,
 * pg_controldata...): from PATH when `initdb` is there, else from the newest
 * Debian/Ubuntu install under /usr/lib/postgresql/<major>/bin, where the
 * packages put them without linking them onto PATH. Absolute, so the same
 * program runs under runuser whatever the postgres user's PATH. Throws with an
 * install hint when PostgreSQL is not installed.
 */
export function pgProgram(name: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return path.join(pgBinDir(env), name);
}

/** The directory {@link pgProgram} takes programs from. */
export function pgBinDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  if (existsSync(DEBIAN_ROOT)) {
    const majors = readdirSync(DEBIAN_ROOT)
      .filter((entry) => /^\d+$/.test(entry) && existsSync(path.join(DEBIAN_ROOT, entry, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors.length > 0) return path.join(DEBIAN_ROOT, majors[0], 'bin');
  }
  throw new Error('initdb not found on PATH nor under /usr/lib/postgresql/*/bin; install postgresql (apt-get install postgresql-15)');
}
