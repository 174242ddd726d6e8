import test from 'ava';
import { metricAlertField, METRIC_ALERT_KINDS, pipelineMetrics } from '../../../core/catalogue/metrics.ts';
import { emptyCatalogue } from '../../../core/catalogue/types.ts';
import { at, backup, catalogueOf, seg, summary, T0, walEntry } from './fixtures.ts';

const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

test('an empty catalogue has no lag, window or backup age (null, never 0), nothing pending and no alerts', (t) => {
  const m = pipelineMetrics(emptyCatalogue(T0), minutes(5));
  t.is(m.archiveLagSeconds, null);
  t.is(m.windowStart, null);
  t.is(m.windowEndAgeSeconds, null);
  t.is(m.lastValidBackupAgeSeconds, null);
  t.is(m.pendingObjects, 0);
  t.is(m.openAlertsTotal, 0);
  t.deepEqual(Object.keys(m.openAlerts).sort(), METRIC_ALERT_KINDS.map(metricAlertField).sort());
});

test('the figures follow the catalogue: archive lag, window, last valid backup, pending objects and open alerts by kind', (t) => {
  const entries = [walEntry(seg(1, 1), at(1)), walEntry(seg(1, 2), at(2)), walEntry(seg(1, 3), at(3)), walEntry(seg(1, 4), at(4), 'pending')];
  const valid = backup(summary(1, 1, 2, at(2)));
  const pending = backup({ ...summary(1, 3, 3, at(3)), name: 'base_later' }, 'pending');
  const c = catalogueOf(entries, [valid, pending], {
    parts: { 'backups/base_later/part_00000.tar': { key: 'backups/base_later/part_00000.tar', generation: '1', size: 1, created: at(3), state: 'pending' } },
    alerts: {
      a: { id: 'a', kind: 'wal-gap', severity: 'CRITICAL', summary: 's', details: {}, opened: at(1) },
      b: { id: 'b', kind: 'malformed-event', severity: 'ERROR', summary: 's', details: {}, opened: at(1) },
      c: { id: 'c', kind: 'malformed-event', severity: 'ERROR', summary: 's', details: {}, opened: at(1) },
    },
  });
  const m = pipelineMetrics(c, minutes(10));
  t.is(m.archiveLagSeconds, 6 * 60);
  t.is(m.newestWalTime, at(4));
  t.is(m.windowStart, at(2));
  t.is(m.windowStartAgeSeconds, 8 * 60);
  // The window ends with the last segment of the unbroken run, pending or not.
  t.is(m.windowEnd, at(4));
  t.is(m.lastValidBackupTime, at(2));
  t.is(m.lastValidBackupAgeSeconds, 8 * 60);
  t.is(m.pendingObjects, 3);
  t.is(m.openAlerts.wal_gap, 1);
  t.is(m.openAlerts.malformed_event, 2);
  t.is(m.openAlerts.corrupt_object, 0);
  t.is(m.openAlertsTotal, 3);
});
