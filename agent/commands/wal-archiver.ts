import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { requireRepo } from '../config.ts';
import { createLogger } from '../log.ts';
import { ARCHIVER_COMMAND, archiverDir, LOG_FILE } from '../wal/archiver-control.ts';
import type { Command } from './types.ts';

/** The archiver's log is moved to `log.1` when it starts with a log larger than this. */
const LOG_ROTATE_BYTES = 4 * 1024 * 1024;

/**
 * `gcwal wal-archiver <pg_wal>`: the background archiver of asynchronous
 * mode, started by wal-push (agent/wal/archiver-control.ts); not run by hand.
 */
export const walArchiver: Command = {
  name: ARCHIVER_COMMAND,
  summary: 'the background WAL archiver wal-push starts in asynchronous mode (internal)',
  usage: 'gcwal wal-archiver <pg_wal>',
  details: `
Started by wal-push when GCWAL_ARCHIVE_ASYNC is on, in the data directory:
archives the segments marked ready in <pg_wal>/archive_status and marks each
one durable in <pg_wal>/.gcwal-pushed/ (see wal-push --help). Logs JSON lines
to <pg_wal>/.gcwal-archiver/log; exits when the postmaster stops or nothing
was ready for a minute. Only one runs per pg_wal; exits at once otherwise.`,
  options: {},
  positionals: 1,
  async run(ctx, [walDirArg]) {
    const repo = requireRepo(ctx.config);
    const walDir = path.resolve(ctx.cwd, walDirArg);
    const dir = archiverDir(walDir);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const logFile = path.join(dir, LOG_FILE);
    const size = (await fs.stat(logFile).catch(() => undefined))?.size ?? 0;
    if (size > LOG_ROTATE_BYTES) await fs.rename(logFile, `${logFile}.1`).catch(() => {});
    const out = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
    const log = createLogger(out, 'json', ctx.config.verbose);
    try {
      const [{ runArchiver }, { pushWalFile }, { warnNewerWalOnce }] = await Promise.all([
        import('../wal/archiver.ts'),
        import('../wal/push.ts'),
        import('../wal/newer-format.ts'),
      ]);
      // lzo's helper thread, shared by the pushes in flight (as push-ahead
      // shares it): compression, the bulk of a push, then runs on two threads.
      const { wantsLzopHelper } = await import('../wal/helper.ts');
      const lzopHelper = wantsLzopHelper(ctx.config.compression, ctx.config.compressionLevel, availableParallelism())
        ? (await import('../../core/codec/lzo/parallel.ts')).startLzopHelper()
        : undefined;
      const storage = await ctx.storage();
      // One identity read for the archiver's life: its segments are all this cluster's.
      const identity = {};
      const result = await runArchiver({
        walDir,
        dataDir: ctx.cwd,
        repo,
        log,
        signal: ctx.signal,
        // The archiver retries a failed segment itself, after a backoff, and
        // meanwhile lets wal-push report the failure: no retries inside a push.
        push: async (file) => {
          const pushed = await pushWalFile(storage, file, {
            codec: ctx.config.compression,
            level: ctx.config.compressionLevel,
            signal: ctx.signal,
            retries: 0,
            identity,
            lzopHelper,
          });
          if (pushed.newerWalMagic !== undefined) await warnNewerWalOnce(walDir, pushed.newerWalMagic, (message) => log.warn(message));
          return pushed;
        },
      });
      void lzopHelper?.stop();
      log.info(`archiver stopped: ${result.reason}`, { archived: result.archived, failures: result.failures });
    } catch (err) {
      log.error('archiver failed', { error: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      await new Promise<void>((resolve) => out.end(resolve));
    }
    return 0;
  },
};
