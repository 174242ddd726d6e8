import test from 'ava';
import { diffAlerts, evaluateAlerts, type AlertThresholds } from '../../../core/alerts/evaluate.ts';
import {
  admitRaisedAlerts,
  MALFORMED_EVENT_KEEP_SECONDS,
  MALFORMED_EVENT_MAX_OPEN,
  malformedEventAlert,
  malformedEventAlertId,
} from '../../../core/alerts/malformed.ts';
import { emptyCatalogue } from '../../../core/catalogue/types.ts';

const THRESHOLDS: AlertThresholds = { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, unvalidatedSeconds: 15 * 60, gapGraceSeconds: 5 * 60 };
const NOW = new Date('2026-03-01T12:00:00.000Z');
const EVENT = {
  id: '1234567890',
  type: 'google.cloud.storage.object.v1.finalized',
  source: '//storage.googleapis.com/projects/_/buckets/b',
  data: { name: 42 },
};

test('the alert of a malformed event is keyed by its id, or by a digest of the event when the id is unusable', (t) => {
  t.is(malformedEventAlertId(EVENT), 'malformed-event:1234567890');
  const unusable = [
    { ...EVENT, id: undefined },
    { ...EVENT, id: 7 },
    { ...EVENT, id: 'has space' },
    { ...EVENT, id: 'x'.repeat(129) },
  ];
  for (const event of unusable) {
    const id = malformedEventAlertId(event);
    t.regex(id, /^malformed-event:sha256-[0-9a-f]{16}$/);
    t.is(malformedEventAlertId(structuredClone(event)), id, 'the same for a redelivery');
  }
  t.not(malformedEventAlertId({ ...EVENT, id: undefined }), malformedEventAlertId({ ...EVENT, id: undefined, data: { name: 43 } }));
});

test('the alert names the function, the problem and the event, shortened', (t) => {
  const alert = malformedEventAlert('validate', { ...EVENT, data: 'x'.repeat(5000) }, 'storage event "1234567890" has data that is not JSON', NOW);
  t.like(alert, {
    id: 'malformed-event:1234567890',
    kind: 'malformed-event',
    severity: 'ERROR',
    opened: NOW.toISOString(),
    details: { function: 'validate', eventId: '1234567890', eventType: EVENT.type, source: EVENT.source },
  });
  t.is(
    alert.summary,
    'the validate function dropped a malformed event: storage event "1234567890" has data that is not JSON; it is not retried, so check what triggers the function and what it sends',
  );
  t.true(String(alert.details.event).length <= 501);
});

test('a malformed-event alert stays open for a day, then resolves', (t) => {
  const raised = malformedEventAlert('catalogue', EVENT, 'storage event "1234567890" has name 42, not an object name', NOW);
  const catalogue = { ...emptyCatalogue(NOW), alerts: { [raised.id]: raised } };
  const later = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
  const day = later(MALFORMED_EVENT_KEEP_SECONDS - 1);
  t.deepEqual(
    evaluateAlerts(catalogue, day, THRESHOLDS).map((a) => a.id),
    [raised.id],
  );
  t.deepEqual(diffAlerts(catalogue.alerts, evaluateAlerts(catalogue, day, THRESHOLDS), day), { opened: [], resolved: [], next: catalogue.alerts });
  const after = later(MALFORMED_EVENT_KEEP_SECONDS);
  t.deepEqual(evaluateAlerts(catalogue, after, THRESHOLDS), []);
  t.deepEqual(diffAlerts(catalogue.alerts, [], after).resolved, [raised]);
});

test('at most 50 malformed-event alerts are open at once, so a flood of bad events pages 50 times, not once per event', (t) => {
  const alert = (n: number) =>
    malformedEventAlert('catalogue', { ...EVENT, id: `ev-${n}` }, 'storage event has bucket "x", not the repository\'s bucket "b"', NOW);
  const open = Object.fromEntries(Array.from({ length: MALFORMED_EVENT_MAX_OPEN - 1 }, (_, n) => [alert(n).id, alert(n)]));
  const raised = [alert(1), alert(100), alert(101)];
  t.deepEqual(
    admitRaisedAlerts(open, raised).map((a) => a.id),
    ['malformed-event:ev-1', 'malformed-event:ev-100'],
    'one more fits; an open one always does',
  );
  const other = { ...alert(102), id: 'corrupt-object:x:1', kind: 'corrupt-object' as const };
  t.deepEqual(
    admitRaisedAlerts({ ...open, [alert(100).id]: alert(100) }, [alert(101), other]).map((a) => a.id),
    ['corrupt-object:x:1'],
  );
});
