import type { CommandContext } from '../context.ts';

/** Option spec in node:util parseArgs form. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** one line for --help */
  description: string;
  /** placeholder shown in --help, e.g. TIME */
  placeholder?: string;
}

/**
 * One CLI command. `run` returns the exit code on success paths (0, or 1 for
 * "not found" where the command documents it) and throws a GcwalError for
 * everything else; the CLI entry prints it and exits with its code.
 */
export interface Command {
  name: string;
  /** one line for the command list */
  summary: string;
  /** e.g. `gcwal wal-fetch <name> <dest>` */
  usage: string;
  /** paragraph(s) for --help: behaviour, exit codes specific to the command */
  details: string;
  /** command-specific options (global config flags are added by the CLI) */
  options: Record<string, OptionSpec>;
  /** exact number of positionals, or [min, max] */
  positionals: number | [number, number];
  run(ctx: CommandContext, positionals: string[], options: Record<string, string | boolean | string[] | undefined>): Promise<number>;
}
