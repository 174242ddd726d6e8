import type { Command } from './types.ts';

/**
 * Commands by name, each with its one-line summary (for --help without
 * loading it) and how to load it. The full CLI's table (index.ts) loads each
 * command's modules on demand; the WAL entry's (agent/wal/cli.ts) holds
 * only the WAL commands, imported statically.
 */
export type CommandTable = Readonly<Record<string, { summary: string; load: () => Promise<Command> }>>;
