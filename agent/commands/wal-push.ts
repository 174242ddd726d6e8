import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import type { LzopHelper } from '../../core/codec/lzo/parallel.ts';
import type { CommandContext } from '../context.ts';
import type { Command } from './types.ts';
import { takeMarker } from '../wal/marker.ts';
import { warnNewerWalOnce } from '../wal/newer-format.ts';
import type { PushOptions } from '../wal/push.ts';

/** `gcwal wal-push <path>`: archive_command. */
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
pg_wal/archive_status), up to 8 of them are archived in the same run and
marked in pg_wal/.gcwal-pushed/, so that the calls for them return at once
without reading the file or contacting the repository. A marker counts only
for the same repository and the unchanged file; otherwise the segment is
pushed as usual.`,
  options: {},
  positionals: 1,
  async run(ctx, [file]) {
    const started = Date.now();
    const filePath = path.resolve(ctx.cwd, file);
    const name = path.basename(filePath);
    const walDir = path.dirname(filePath);
    const repo = ctx.config.repo;
    // Checked before the repository is opened: for gs:// that alone loads
    // the Cloud Storage client, which takes longer than a whole push here.
    const marker = repo ? await takeMarker(walDir, name, repo, filePath) : undefined;
    if (marker) {
      void ctx.lzopHelper?.stop();
      ctx.log.debug(`${name} was archived ahead by an earlier wal-push`, { key: marker.key, rawBytes: marker.rawSize, ms: Date.now() - started });
      return 0;
    }
    // Started first (if the entry has not already): its thread takes 25-40 ms
    // to start, in parallel with everything below, and joins the compression
    // when it is ready. One started early for nothing is stopped.
    const wanted = ctx.config.compression === 'lzo' && ctx.config.compressionLevel === undefined && availableParallelism() > 1;
    if (!wanted) void ctx.lzopHelper?.stop();
    const lzopHelper = wanted ? (ctx.lzopHelper ?? (await import('../../core/codec/lzo/parallel.ts')).startLzopHelper()) : undefined;
    try {
      return await pushWithHelper(ctx, filePath, lzopHelper, started);
    } finally {
      // Not awaited: the thread is unref'd and the process exits after this.
      void lzopHelper?.stop();
    }
  },
};

/** The push itself, once the marker did not answer. */
async function pushWithHelper(ctx: CommandContext, filePath: string, lzopHelper: LzopHelper | undefined, started: number): Promise<number> {
  const name = path.basename(filePath);
  const walDir = path.dirname(filePath);
  const repo = ctx.config.repo;
  // Loaded only now, so an answer from a marker does not compile the codecs.
  const [{ pushWalFile }, { pushAhead }, storage] = await Promise.all([import('../wal/push.ts'), import('../wal/ahead.ts'), ctx.storage()]);
  const options: PushOptions = {
    codec: ctx.config.compression,
    level: ctx.config.compressionLevel,
    signal: ctx.signal,
    retries: ctx.config.retries,
    onRetry: (attempt, err) => ctx.log.warn(`archiving ${name} failed, retrying`, { attempt, error: err.message }),
    // The segments pushed ahead are this cluster's too: gcwal.json is read once per run, not once per segment.
    identity: {},
    lzopHelper,
  };
  const result = await pushWalFile(storage, filePath, options);
  if (result.newerWalMagic !== undefined) await warnNewerWalOnce(walDir, result.newerWalMagic, (message) => ctx.log.warn(message));
  const fields = { key: result.key, rawBytes: result.rawSize, storedBytes: result.storedSize, helperBlocks: result.helperBlocks, ms: Date.now() - started };
  if (result.status === 'archived') ctx.log.debug(`archived ${name}`, fields);
  else ctx.log.info(`${name} was already archived with identical content`, fields);

  // The segment PostgreSQL asked for is durable; what follows only saves
  // later calls work, and its failures are left for those calls to meet.
  const ahead = await pushAhead(walDir, name, {
    repo: repo!,
    push: (next) => pushWalFile(storage, next, { ...options, onRetry: undefined }),
    signal: ctx.signal,
    onError: (next, err) => ctx.log.debug(`could not archive ${next} ahead; it will be pushed when PostgreSQL asks`, { error: err instanceof Error ? err.message : String(err) }),
  });
  if (ahead.length > 0) ctx.log.debug(`archived ${ahead.length} more ready segment${ahead.length === 1 ? '' : 's'} ahead`, { segments: ahead.join(','), ms: Date.now() - started });
  return 0;
}
