/**
 * The process entry for archive_command and restore_command: wal-push and
 * wal-fetch only, the same code as the full CLI runs for them. The build
 * makes it a single CommonJS file (dist/gcwal-wal.cjs) that the launcher
 * runs for those two commands: PostgreSQL starts one process per WAL
 * segment, and one CommonJS file loads about 15 ms faster than the ES module
 * entry and its chunks (Node's ESM loader, a resolution per chunk). No
 * top-level await, so that it can be CommonJS.
 */
// First, so the helper thread starts before the rest is evaluated.
import { earlyLzopHelper } from './wal/early-helper.ts';
import { WAL_COMMANDS } from './commands/wal-table.ts';
import { runAsProcess } from './entry.ts';
import { runCommandLine } from './run.ts';

void runAsProcess((argv, env, io) => runCommandLine(argv, env, { ...io, lzopHelper: earlyLzopHelper }, WAL_COMMANDS));
