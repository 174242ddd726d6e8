import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertReachableByOthers, postgresUser, runningAsRoot } from './users.ts';

/** A temporary directory and the function that removes it with everything inside. */
export interface TempDir {
  path: string;
  /** remove the directory recursively; safe to call twice */
  cleanup(): Promise<void>;
}

export interface TempDirOptions {
  /**
   * `postgres`: when running as root, chown the directory to the postgres user
   * so the server and archive_command can write in it. `current` (default):
   * leave it owned by this process's user.
   */
  owner?: 'postgres' | 'current';
  /** permission bits; default 0o755 so the postgres user can enter it either way */
  mode?: number;
}

/**
 * Create a fresh directory under os.tmpdir() (mkdtemp, so parallel test
 * processes never share one). Rejects when os.tmpdir() is not reachable by
 * other users while running as root, with a hint to set TMPDIR.
 */
export async function makeTempDir(prefix: string, options: TempDirOptions = {}): Promise<TempDir> {
  const base = os.tmpdir();
  if (runningAsRoot()) {
    await assertReachableByOthers(base, 'enter', 'set TMPDIR to a directory every user can enter, such as /tmp');
  }
  const dir = await mkdtemp(path.join(base, `gcwal-${prefix}-`));
  await chmod(dir, options.mode ?? 0o755);
  if (options.owner === 'postgres' && runningAsRoot()) {
    const pg = await postgresUser();
    await chown(dir, pg.uid, pg.gid);
  }
  return { path: dir, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }) };
}
