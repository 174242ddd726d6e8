/**
 * The process entry for archive_command and restore_command: wal-push,
 * wal-fetch and the prefetcher wal-fetch starts, the same code as the full
 * CLI (agent/cli.ts) runs for them. The build makes it a single CommonJS
 * file (dist/gcwal-wal.cjs) that the launcher (launcher.sh) runs for
 * wal-push and wal-fetch: PostgreSQL starts one process per WAL file, and one
 * CommonJS file loads faster than the ES module entry and its chunks (Node's
 * ESM loader resolves each chunk). No top-level await, so that it can be
 * CommonJS. README.md here describes the whole fast path.
 */
// First, so the helper thread starts before the rest is evaluated (an
// import for its effect: sorting imports does not move it).
import './early-helper.ts';
import type { CommandTable } from '../commands/table.ts';
import { walArchiver } from '../commands/wal-archiver.ts';
import { walFetch } from '../commands/wal-fetch.ts';
import { walPrefetch } from '../commands/wal-prefetch.ts';
import { walPush } from '../commands/wal-push.ts';
import { runAsProcess, runCommandLine } from '../run.ts';
import { earlyLzopHelper } from './early-helper.ts';

/**
 * This entry's commands, imported statically so that its bundle is one file
 * holding nothing else (see scripts/build.mjs).
 */
const WAL_COMMANDS: CommandTable = {
  'wal-push': { summary: walPush.summary, load: async () => walPush },
  'wal-fetch': { summary: walFetch.summary, load: async () => walFetch },
  'wal-prefetch': { summary: walPrefetch.summary, load: async () => walPrefetch },
  'wal-archiver': { summary: walArchiver.summary, load: async () => walArchiver },
};

void runAsProcess((argv, env, io) => runCommandLine(argv, env, { ...io, lzopHelper: earlyLzopHelper }, WAL_COMMANDS));
