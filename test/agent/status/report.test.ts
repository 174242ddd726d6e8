/**
 * buildStatusReport's `metrics`: the figures the watchdog logs, computed by
 * the same function over the same catalogue, and over a listing from the
 * alerts evaluated on the spot.
 */
import test from 'ava';
import { buildStatusReport } from '../../../agent/status/report.ts';
import { pipelineMetrics } from '../../../core/catalogue/metrics.ts';
import { at, backup, catalogueOf, seg, summary, T0, walEntry } from '../../core/catalogue/fixtures.ts';

const thresholds = { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, gapGraceSeconds: 5 * 60 };
const now = new Date(T0.getTime() + 90 * 60_000);

function archive() {
  const entries = [walEntry(seg(1, 1), at(1)), walEntry(seg(1, 2), at(2)), walEntry(seg(1, 3), at(3), 'pending')];
  return catalogueOf(entries, [backup(summary(1, 1, 1, at(1)))], {
    lastWalArrival: at(3),
    alerts: { 'corrupt-object:x': { id: 'corrupt-object:x', kind: 'corrupt-object', severity: 'CRITICAL', summary: 's', details: {}, opened: at(2) } },
  });
}

test('with the pipeline\'s catalogue, the report carries the watchdog\'s figures: lag, window, backup age, pending objects, the pipeline\'s alerts by kind', (t) => {
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
  t.deepEqual(report.alerts.map((a) => a.kind), ['archiving-stalled']);
  t.like(report.metrics, { openAlertsTotal: 1, openAlerts: { archiving_stalled: 1, corrupt_object: 0 }, pendingObjects: 4, windowStart: at(1) });
});
