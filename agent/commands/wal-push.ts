import * as path from 'node:path';
import type { Command } from './types.ts';
import { pushWalFile } from '../wal/push.ts';

/** `gcwal wal-push <path>`: archive_command. */
export const walPush: Command = {
  name: 'wal-push',
  summary: 'archive one WAL file (archive_command)',
  usage: 'gcwal wal-push <path>',
  details: `
Archives a WAL segment, .partial, .history or .backup file from pg_wal. Use as
  archive_command = 'gcwal wal-push %p'
The file is streamed through compression and CRC32C into the repository and
the command exits 0 only once the object is durable. A segment's long page
header is checked against its name, and its system identifier against the
repository's: WAL from another cluster is refused (exit 4). Pushing the same
content again exits 0; different content under an existing name exits 5 and
nothing is overwritten.`,
  options: {},
  positionals: 1,
  async run(ctx, [file]) {
    const started = Date.now();
    const storage = await ctx.storage();
    const result = await pushWalFile(storage, path.resolve(ctx.cwd, file), {
      codec: ctx.config.compression,
      level: ctx.config.compressionLevel,
      signal: ctx.signal,
      retries: ctx.config.retries,
      onRetry: (attempt, err) => ctx.log.warn(`archiving ${path.basename(file)} failed, retrying`, { attempt, error: err.message }),
    });
    const fields = { key: result.key, rawBytes: result.rawSize, storedBytes: result.storedSize, ms: Date.now() - started };
    if (result.status === 'archived') ctx.log.debug(`archived ${path.basename(file)}`, fields);
    else ctx.log.info(`${path.basename(file)} was already archived with identical content`, fields);
    return 0;
  },
};
