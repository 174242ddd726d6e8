import type { Writable } from 'node:stream';
import type { LzopHelper } from '../core/codec/lzo/parallel.ts';
import type { Storage } from '../core/storage/types.ts';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';

/**
 * Everything a command needs, built once at the CLI edge. Commands never read
 * process.env or call process.exit; they return an exit code or throw a GcwalError.
 */
export interface CommandContext {
  config: Config;
  /** opens the repository lazily so commands that do not need it (help) stay fast */
  storage(): Promise<Storage>;
  log: Logger;
  signal: AbortSignal;
  stdout: Writable;
  stderr: Writable;
  /** stderr is a terminal: show progress */
  interactive: boolean;
  /** the environment, for commands that must pass it on (child processes) */
  env: Readonly<Record<string, string | undefined>>;
  /** current working directory (restore_command runs in the data directory) */
  cwd: string;
  /** the running gcwal as a command line should run it again (restore_command): an absolute path when known, see agent/self-command.ts */
  gcwalCommand(): string;
  /** wal-push's lzo helper thread, when the entry started it before anything else (see agent/wal/early-helper.ts) */
  lzopHelper?: LzopHelper;
}
