import * as path from 'node:path';
import { ExitCode } from '../../core/errors.ts';
import { AHEAD_LIMIT } from '../wal/ahead.ts';
import { archiveWalFile } from '../wal/archive.ts';
import type { Command } from './types.ts';

/** `gcwal wal-push <path>`: archive_command; agent/wal/archive.ts does the work (agent/wal/README.md). */
export const walPush: Command = {
  name: 'wal-push',
  summary: 'archive one WAL file (archive_command)',
  usage: 'gcwal wal-push <path>',
  details: `
Archives a WAL segment, .partial, .history or .backup file from pg_wal. Use as
  archive_command = 'gcwal wal-push %p'
The file is compressed, checksummed (CRC32C) and stored in the repository,
and the command exits 0 only once the object is durable. A segment's long
page header is checked against its name, and its system identifier against
the repository's: WAL from another cluster is refused (exit 4), and a
repository without gcwal.json (never created with gcwal repo-create, or a
wrong GCWAL_REPO) exits 13 with nothing written. Pushing the
same content again exits 0; different content under an existing name exits 5
and nothing is overwritten.
A segment from a PostgreSQL newer than this gcwal knows is archived when its
header is consistent with its name and the repository, with a warning given
once per pg_wal (noted in pg_wal/.gcwal-newer-wal-<magic>).

When PostgreSQL has fallen behind (further segments marked ready in
pg_wal/archive_status), up to ${AHEAD_LIMIT} of them are archived in the same run and
marked in pg_wal/.gcwal-pushed/, so that the calls for them return at once
without reading the file or contacting the repository. A marker counts only
for the same repository and the unchanged file; otherwise the segment is
pushed as usual.

With GCWAL_ARCHIVE_ASYNC=on (or --archive-async), the first call starts one
background archiver per pg_wal (gcwal wal-archiver, pid in
pg_wal/.gcwal-archiver/archiver.pid, log in pg_wal/.gcwal-archiver/log;
it exits when PostgreSQL stops or nothing was ready for a minute), which
archives every ready segment, 4 at a time, and marks each one once it is
durable. A call for a full segment then returns once the archiver's marker
says it is durable (the launcher answers without starting Node), waiting up
to 30 s for it; when the archiver is failing, gone or slower than that, the
call pushes the segment itself and reports its own outcome. Nothing is ever
acknowledged before it is durable, and nothing is dropped from the queue.
.history, .partial and .backup files are always pushed by the call itself.
See gcwal archiver-status.`,
  options: {},
  positionals: 1,
  async run(ctx, [file]) {
    const { config } = ctx;
    await archiveWalFile(path.resolve(ctx.cwd, file), {
      repo: config.repo,
      codec: config.compression,
      level: config.compressionLevel,
      retries: config.retries,
      storage: () => ctx.storage(),
      log: ctx.log,
      signal: ctx.signal,
      lzopHelper: ctx.lzopHelper,
      async: config.archiveAsync ? { env: ctx.env } : undefined,
    });
    return ExitCode.ok;
  },
};
