import * as path from 'node:path';
import { requireRepo } from '../config.ts';
import { PREFETCH_COMMAND } from '../wal/prefetch-control.ts';
import type { Command } from './types.ts';

/**
 * `gcwal wal-prefetch <pg_wal>`: the background prefetcher, started by
 * wal-fetch during recovery (agent/wal/prefetch-control.ts); not run by hand.
 */
export const walPrefetch: Command = {
  name: PREFETCH_COMMAND,
  summary: 'the background WAL prefetcher wal-fetch starts during recovery (internal)',
  usage: 'gcwal wal-prefetch <pg_wal>',
  details: `
Started by wal-fetch during recovery, in the data directory: fetches the
segments after the one PostgreSQL asked for into <pg_wal>/.gcwal-spool/ (see
wal-fetch --help), and exits when recovery ends, the postmaster stops, or no
call came for a minute. Only one runs per spool; exits at once otherwise.`,
  options: {},
  positionals: 1,
  async run(ctx, [walDir]) {
    const repo = requireRepo(ctx.config);
    if (ctx.config.prefetch.depth === 0) return 0;
    const { runPrefetcher } = await import('../wal/prefetcher.ts');
    const result = await runPrefetcher({
      walDir: path.resolve(ctx.cwd, walDir),
      dataDir: ctx.cwd,
      repo,
      storage: await ctx.storage(),
      settings: { depth: ctx.config.prefetch.depth, concurrency: ctx.config.prefetch.concurrency, spoolBytes: ctx.config.prefetch.spoolBytes },
      log: ctx.log,
      signal: ctx.signal,
    });
    ctx.log.info(`prefetch stopped: ${result.reason}`, { spooled: result.spooled, served: result.served });
    return 0;
  },
};
