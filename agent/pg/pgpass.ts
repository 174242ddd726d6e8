/**
 * libpq's password file (`~/.pgpass`, or the file PGPASSFILE names): with
 * PGPASSWORD, the only places a password comes from, so that none has to be
 * on a command line where `ps` shows it. Read as libpq reads it
 * (fe-connect.c, passwordFromFile); node-postgres' own reading of it is
 * deprecated and prints a warning each time it is used.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

/** The connection a password is looked up for. */
export interface PgpassTarget {
  /** host name or socket directory */
  host: string;
  port: number;
  database: string;
  user: string;
}

/**
 * The socket directory libpq was built with (Debian's). A connection through
 * it is looked up as host `localhost`, as libpq does; any other socket
 * directory is matched as written.
 */
const DEFAULT_SOCKET_DIR = '/var/run/postgresql';

/** A line's fields split at unescaped colons, `\:` and `\\` unescaped. */
function splitLine(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) field += line[++i];
    else if (c === ':') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

/**
 * The password of the first line of a password file's `text` that matches
 * `target`, or undefined. A line is `host:port:database:user:password`; `*`
 * matches any value of the first four; `#` starts a comment line. The
 * password ends at the next unescaped colon, as in libpq.
 */
export function findPgpassPassword(text: string, target: PgpassTarget): string | undefined {
  const host = target.host === DEFAULT_SOCKET_DIR ? 'localhost' : target.host;
  const want = [host, String(target.port), target.database, target.user];
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = splitLine(line);
    if (fields.length < 5) continue;
    if (want.every((value, i) => fields[i] === '*' || fields[i] === value)) return fields[4];
  }
  return undefined;
}

/** The password file libpq would read: PGPASSFILE, else ~/.pgpass. */
export function pgpassFile(passfile: string | undefined): string {
  return passfile ?? path.join(homedir(), '.pgpass');
}

/**
 * Look `target` up in the password file. Undefined when the file does not
 * exist or has no matching line; a file that group or others may read is
 * ignored, with a warning, as libpq does.
 */
export async function readPgpass(file: string, target: PgpassTarget, warn: (message: string) => void = () => {}): Promise<string | undefined> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  if ((info.mode & 0o077) !== 0) {
    warn(`password file ${file} has group or world access and is ignored; permissions should be u=rw (0600) or less`);
    return undefined;
  }
  return findPgpassPassword(await readFile(file, 'utf8'), target);
}
