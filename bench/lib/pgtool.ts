import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { pgProgram } from '../../local/testkit/pgbin.ts';

/**
 * The absolute path of a PostgreSQL client program such as pgbench, from the
 * same installation as the server the harness runs. PATH may hold only
 * symlinks to initdb and pg_ctl (as /usr/local/bin does here), so look
 * beside the real pg_ctl first.
 */
export function pgTool(name: string): string {
  const beside = path.join(path.dirname(realpathSync(pgProgram('pg_ctl'))), name);
  if (existsSync(beside)) return beside;
  const onPath = pgProgram(name);
  if (existsSync(onPath)) return onPath;
  throw new Error(`${name} not found beside ${pgProgram('pg_ctl')}; install postgresql-contrib or the PostgreSQL client programs`);
}
