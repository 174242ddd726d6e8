import { ExitCode } from '../../core/errors.ts';
import { loadCatalogue } from '../catalogue/load.ts';
import { formatStatusReport } from '../status/format.ts';
import { buildStatusReport } from '../status/report.ts';
import type { Command } from './types.ts';

/** `gcwal status [--json]`. */
export const status: Command = {
  name: 'status',
  summary: 'what can be restored to which point, the newest WAL, backups and open alerts',
  usage: 'gcwal status [--json]',
  details: `
Reads the pipeline's catalogue (catalogue/catalogue.json in the repository,
or in GCWAL_CATALOGUE_REPO) and reports, per timeline, the recoverable window
(the earliest restorable point, the end of the oldest valid backup whose WAL
is unbroken, and the latest, the end of that unbroken WAL, each as an LSN and
a time), the newest archived WAL and how long ago it arrived, the contiguous
WAL ranges with their validation states and the gaps between them; then the
backups with their validation state, and the alerts the pipeline has open.
With a catalogue the repository is never listed.

Without a catalogue (no pipeline deployed) it says so on stderr and lists
the repository instead: the report is marked "source: listing", every state
is "unvalidated", the windows count unvalidated backups and WAL, and alerts
are evaluated on the spot (stalled archiving, gaps, forks without history,
an old or missing backup) with GCWAL_STALL_MINUTES,
GCWAL_BACKUP_MAX_AGE_HOURS and GCWAL_GAP_GRACE_MINUTES.

--json prints one JSON object, a stable interface described in
docs/status-and-retention.md.

Exit codes: 0 whenever the report was produced, alerts or not (scripts read
the alerts from --json: each has a severity); 6 a damaged catalogue; 7 and 8
the repository could not be read.`,
  options: {
    json: { type: 'boolean', description: 'print the report as one JSON object' },
  },
  positionals: 0,
  async run(ctx, _positionals, options) {
    const now = new Date();
    const storage = await ctx.storage();
    const loaded = await loadCatalogue(ctx, now);
    const report = buildStatusReport(loaded, storage.url, now, ctx.config.thresholds);
    ctx.stdout.write(options.json ? JSON.stringify(report, null, 2) + '\n' : formatStatusReport(report));
    return ExitCode.ok;
  },
};
