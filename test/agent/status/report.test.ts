/**
 * buildStatusReport's `metrics`: the figures the watchdog logs, computed by
 * the same function over the same catalogue, and over a listing from the
 * alerts evaluated on the spot.
 */
import test from 'ava';
import { formatStatusReport } from '../../../agent/status/format.ts';
import { buildStatusReport } from '../../../agent/status/report.ts';
import { pipelineMetrics } from '../../../core/catalogue/metrics.ts';
import { at, backup, catalogueOf, lsnIn, seg, summary, T0, walEntry } from '../../core/catalogue/fixtures.ts';

const thresholds = { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, gapGraceSeconds: 5 * 60 };
const now = new Date(T0.getTime() + 90 * 60_000);

function archive() {
  const entries = [walEntry(seg(1, 1), at(1)), walEntry(seg(1, 2), at(2)), walEntry(seg(1, 3), at(3), 'pending')];
  return catalogueOf(entries, [backup(summary(1, 1, 1, at(1)))], {
    lastWalArrival: at(3),
    alerts: { 'corrupt-object:x': { id: 'corrupt-object:x', kind: 'corrupt-object', severity: 'CRITICAL', summary: 's', details: {}, opened: at(2) } },
  });
}

test("with the pipeline's catalogue, the report carries the watchdog's figures: lag, window, backup age, pending objects, the pipeline's alerts by kind", (t) => {
  const catalogue = archive();
  const report = buildStatusReport({ catalogue, source: 'catalogue', location: 'x', generation: '5' }, 'gs://b/p', now, thresholds);
  t.deepEqual(report.metrics, pipelineMetrics(catalogue, now));
  t.like(report.metrics, {
    archiveLagSeconds: 87 * 60,
    windowStart: at(1),
    windowEnd: report.timelines[0].window.latest!.time,
    lastValidBackupAgeSeconds: 89 * 60,
    pendingObjects: 1,
    openAlertsTotal: 1,
    openAlerts: { corrupt_object: 1, archiving_stalled: 0 },
  });
  t.is(report.metrics.archiveLagSeconds, report.newestWal!.ageSeconds);
});

test('over a listing the figures count the alerts evaluated on the spot, and unvalidated objects as pending', (t) => {
  const catalogue = archive();
  catalogue.alerts = {};
  for (const e of Object.values(catalogue.wal)) e.state = 'pending';
  for (const b of Object.values(catalogue.backups)) b.state = 'pending';
  const report = buildStatusReport({ catalogue, source: 'listing', location: 'x', generation: '0' }, 'gs://b/p', now, thresholds);
  t.deepEqual(
    report.alerts.map((a) => a.kind),
    ['archiving-stalled'],
  );
  t.like(report.metrics, { openAlertsTotal: 1, openAlerts: { archiving_stalled: 1, corrupt_object: 0 }, pendingObjects: 4, windowStart: at(1) });
});

test('the window says until when it is restorable by time, the last commit archived, and lists the named restore points', (t) => {
  const catalogue = archive();
  catalogue.wal[seg(1, 1)].records = { restorePoints: [] };
  catalogue.wal[seg(1, 2)].records = {
    firstXactTime: '2024-05-01T00:01:30.000001Z',
    lastXactTime: '2024-05-01T00:02:10.654321Z',
    lastXactLsn: lsnIn(2, 0x900),
    restorePoints: [{ name: 'before "the" upgrade', time: '2024-05-01T00:01:40.000002Z', lsn: lsnIn(2, 0x100) }],
  };
  const report = buildStatusReport({ catalogue, source: 'catalogue', location: 'x', generation: '5' }, 'gs://b/p', now, thresholds);
  const [tl] = report.timelines;
  t.deepEqual(tl.window.lastCommit, { time: '2024-05-01T00:02:10.654321Z', lsn: lsnIn(2, 0x900), segment: seg(1, 2) });
  t.false(tl.window.lastCommitCertain, 'segment 3 is pending: it may hold a later commit');
  t.deepEqual(tl.restorePoints, [{ name: 'before "the" upgrade', time: '2024-05-01T00:01:40.000002Z', lsn: lsnIn(2, 0x100), segment: seg(1, 2) }]);
  const text = formatStatusReport(report);
  t.regex(
    text,
    new RegExp(
      `^ {2}by time {6}restorable from 2024-05-01 00:01:00\\.000Z to 2024-05-01 00:02:10\\.654321Z, the last commit archived \\(${lsnIn(2, 0x900)} in ${seg(1, 2)}; later WAL is not validated yet\\)$`,
      'm',
    ),
  );
  t.regex(text, new RegExp(`^ {2}named {8}"before \\\\"the\\\\" upgrade" at 2024-05-01 00:01:40\\.000002Z \\(${lsnIn(2, 0x100)}\\)$`, 'm'));
});

test("an incremental backup's parent is in the report and in a PARENT column of the text", (t) => {
  const full = summary(1, 1, 1, at(1));
  const inc = { ...summary(1, 2, 2, at(2)), parent: full.name };
  const entries = [walEntry(seg(1, 1), at(1)), walEntry(seg(1, 2), at(2))];
  const report = buildStatusReport(
    { catalogue: catalogueOf(entries, [backup(full), backup(inc)]), source: 'catalogue', location: 'x', generation: '5' },
    'gs://b/p',
    now,
    thresholds,
  );
  t.deepEqual(
    report.backups.map((b) => [b.name, b.parent]),
    [
      [full.name, undefined],
      [inc.name, full.name],
    ],
  );
  const text = formatStatusReport(report);
  t.regex(text, /NAME +TIMELINE +STOP TIME +STOP LSN +STORED SIZE +PARENT +STATE/);
  t.regex(text, new RegExp(`${inc.name} .* ${full.name} +valid`));
});
