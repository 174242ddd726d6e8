import * as path from 'node:path';
import { ExitCode } from '../../core/errors.ts';
import { archiverReport, formatArchiverReport } from '../wal/archiver-report.ts';
import type { Command } from './types.ts';

/** `gcwal archiver-status [<pgdata>] [--json]`: agent/wal/archiver-report.ts. */
export const archiverStatus: Command = {
  name: 'archiver-status',
  summary: 'the asynchronous archiver of a data directory: queue, lag, last error',
  usage: 'gcwal archiver-status [<pgdata>] [--json]',
  details: `
Reports the background archiver of asynchronous mode (GCWAL_ARCHIVE_ASYNC)
for the data directory <pgdata> (default PGDATA, else the current
directory): whether it runs, its queue (segments PostgreSQL marked ready
that are not yet durable in the repository), the lag (how long the oldest of
them has been ready), how many it archived, its failures and last error, and
where its log is. Reads only local files; the repository is not contacted.
--json prints one JSON object. Exit code 0 whenever the report was produced.`,
  options: {
    json: { type: 'boolean', description: 'print the report as one JSON object' },
  },
  positionals: [0, 1],
  async run(ctx, [pgdata], options) {
    const dataDir = path.resolve(ctx.cwd, pgdata ?? ctx.env.PGDATA ?? '.');
    const report = await archiverReport(path.join(dataDir, 'pg_wal'));
    ctx.stdout.write(options.json ? JSON.stringify(report) + '\n' : formatArchiverReport(report));
    return ExitCode.ok;
  },
};
