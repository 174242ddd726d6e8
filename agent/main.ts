import { COMMANDS } from './commands/index.ts';
import { runCommandLine, type MainIo } from './run.ts';

export type { MainIo } from './run.ts';

/**
 * Run the CLI with every command (see runCommandLine): returns the exit
 * code, never throws, never calls process.exit.
 */
export function main(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: MainIo): Promise<number> {
  return runCommandLine(argv, env, io, COMMANDS);
}
