import type { CommandTable } from './table.ts';
import { walFetch } from './wal-fetch.ts';
import { walPrefetch } from './wal-prefetch.ts';
import { walPush } from './wal-push.ts';

/**
 * The commands of the WAL entry (agent/cli-wal.ts): archive_command's and
 * restore_command's, imported statically so that entry's bundle is one file
 * holding nothing else (see scripts/build.mjs).
 */
export const WAL_COMMANDS: CommandTable = {
  'wal-push': { summary: walPush.summary, load: async () => walPush },
  'wal-fetch': { summary: walFetch.summary, load: async () => walFetch },
  'wal-prefetch': { summary: walPrefetch.summary, load: async () => walPrefetch },
};
