import os from 'node:os';
import { exec } from './exec.ts';
import { asPostgres, childEnv } from './users.ts';

/** What a gcwal run printed and how it exited. */
export interface GcwalResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunGcwalOptions {
  /**
   * Variables for gcwal on top of this process's environment, from which PG*
   * and GCWAL_* are removed first so nothing leaks in from the developer's
   * shell; pass cluster.env and GCWAL_REPO here. A value of undefined removes
   * the variable.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** working directory; default os.tmpdir(), which every user can enter */
  cwd?: string;
  /**
   * `postgres`: run as the postgres user (via runuser), as archive_command and
   * restore_command do. Only root can switch users; otherwise gcwal runs as
   * the current user, who then also owns the test clusters.
   */
  asUser?: 'postgres';
  /** written to gcwal's stdin */
  input?: string | Buffer;
  /** kill gcwal after this long; default 120 s */
  timeoutMs?: number;
}

/**
 * Run the installed gcwal (`command` is InstalledAgent.command) with `args`.
 * Resolves with the exit code and output for any exit code, so tests assert
 * on failures as well; rejects only when the program cannot be started.
 */
export async function runGcwal(command: string, args: readonly string[], options: RunGcwalOptions = {}): Promise<GcwalResult> {
  const [file, argv] = options.asUser === 'postgres' ? asPostgres(command, args) : [command, [...args]];
  const { code, stdout, stderr } = await exec(file, argv, {
    env: await childEnv(options.env, options.asUser === 'postgres'),
    cwd: options.cwd ?? os.tmpdir(),
    input: options.input,
    timeoutMs: options.timeoutMs,
  });
  return { code, stdout, stderr };
}
