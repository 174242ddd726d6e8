/**
 * The functions' catalogue outbox: absorb (pure: events in, alerts
 * re-evaluated, announcements queued in the outbox) and CatalogueOutbox (one
 * conditional write, then the outbox published and emptied) on a gs:// catalogue with gcloud's
 * real Pub/Sub emulator read by real subscribers.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { MALFORMED_EVENT_MAX_OPEN, malformedEventAlert } from '../../../core/alerts/malformed.ts';
import { emptyCatalogue, type CatalogueEvent } from '../../../core/catalogue/types.ts';
import { readFunctionsConfig } from '../../../functions/config.ts';
import { absorb, OUTBOX_CLAIM_MS, CatalogueOutbox } from '../../../functions/lib/catalogue-outbox.ts';
import type { Publisher } from '../../../functions/lib/publisher.ts';
import type { Runtime } from '../../../functions/lib/runtime.ts';
import { failingPublisher, startHarness, type Harness } from '../harness.ts';
import { walEntry } from '../../../core/catalogue/runs.ts';

let h: Harness;

test.before(async () => {
  h = await startHarness();
});

test.after.always(async () => {
  await h?.close();
});

const CLUSTER = '7412345678901234567';
const SEG = (n: number) => `00000001000000000000000${n.toString(16).toUpperCase()}`;
const T = (minutes: number) => new Date(Date.UTC(2026, 2, 1, 12, minutes)).toISOString();
const config = readFunctionsConfig({ GCWAL_REPO: 'gs://bucket/db', GCWAL_RETAIN_FULL: '2' });

function finalized(n: number, generation = String(1000 + n), created = T(0)): CatalogueEvent {
  return { type: 'finalized', key: `wal/${SEG(n)}`, generation, size: 4096, created };
}

function verdict(n: number, ok: boolean, time = T(1), generation = String(1000 + n)): CatalogueEvent {
  return {
    type: 'validated',
    key: `wal/${SEG(n)}`,
    generation,
    ok,
    time,
    systemIdentifier: CLUSTER,
    walSegmentSize: 16 * 1024 * 1024,
    ...(ok ? {} : { problem: 'raw crc32c mismatch' }),
  };
}

/** Deep-freeze, so a test fails if absorb modifies its input. */
function frozen<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}

test('absorb records events and queues one open message for a new incident', (t) => {
  const now = new Date(T(2));
  const start = frozen(absorb(emptyCatalogue(now), [finalized(1), verdict(1, true)], now, { config }));
  t.deepEqual(start.alerts, {});
  t.is(start.outbox, undefined);

  const after = absorb(start, frozen([finalized(2), verdict(2, false)]), now, { config });
  const id = `corrupt-object:wal/${SEG(2)}:1002`;
  t.deepEqual(Object.keys(after.alerts), [id]);
  t.like(walEntry(after, SEG(2)), { state: 'corrupt', problem: 'raw crc32c mismatch' });
  t.deepEqual(
    after.outbox?.map((m) => ({ id: m.id, status: m.status, cluster: m.cluster, repository: m.repository, time: m.time })),
    [{ id, status: 'open', cluster: CLUSTER, repository: 'gs://bucket/db', time: now.toISOString() }],
  );
  t.is(start.outbox, undefined, 'the input is left alone');
});

test('an alert raised before any good segment names the cluster gcwal.json records', (t) => {
  const now = new Date(T(2));
  const bad: CatalogueEvent = { type: 'validated', key: `wal/${SEG(1)}`, generation: '1001', ok: false, time: T(1), problem: 'raw crc32c mismatch' };
  const without = absorb(emptyCatalogue(now), [finalized(1), bad], now, { config });
  t.is(without.outbox?.[0]?.cluster, 'unknown');
  const withIdentity = absorb(emptyCatalogue(now), [finalized(1), bad], now, { config }, { systemIdentifier: CLUSTER, walSegmentSize: 16 * 1024 * 1024 });
  t.is(withIdentity.outbox?.[0]?.cluster, CLUSTER);
  t.is(withIdentity.systemIdentifier, CLUSTER);
  t.is(
    absorb(withIdentity, [finalized(1), bad], now, { config }, { systemIdentifier: CLUSTER, walSegmentSize: 16 * 1024 * 1024 }),
    withIdentity,
    'still idempotent',
  );
});

test('absorb opens a raised incident once: raised again, by any instance, it announces nothing', (t) => {
  const now = new Date(T(2));
  const alert = malformedEventAlert('validate', { id: 'ev-1' }, 'storage event "ev-1" has no object data', now);
  const first = frozen(absorb(emptyCatalogue(now), [], now, { config }, undefined, [alert]));
  t.deepEqual(
    first.outbox?.map((m) => [m.id, m.status, m.kind]),
    [['malformed-event:ev-1', 'open', 'malformed-event']],
  );
  const outboxEmptied = frozen({ ...first, outbox: undefined });
  const again = absorb(outboxEmptied, [], new Date(T(3)), { config }, undefined, [
    malformedEventAlert('catalogue', { id: 'ev-1' }, 'storage event "ev-1" has no object data', new Date(T(3))),
  ]);
  t.is(again.outbox, undefined);
  t.deepEqual(Object.keys(again.alerts), ['malformed-event:ev-1']);
  t.is(again.alerts['malformed-event:ev-1'].opened, now.toISOString());
  t.deepEqual(absorb(outboxEmptied, [finalized(1)], new Date(T(4)), { config }).alerts, again.alerts, 'kept open by later changes');
  const flooded = Array.from({ length: MALFORMED_EVENT_MAX_OPEN }, (_, n) =>
    malformedEventAlert('catalogue', { id: `flood-${n}` }, 'storage event is about bucket "x"', now),
  );
  const full = absorb(emptyCatalogue(now), [], now, { config }, undefined, flooded);
  t.is(full.outbox?.length, MALFORMED_EVENT_MAX_OPEN);
  t.is(absorb({ ...full, outbox: undefined }, [], now, { config }, undefined, [alert]).outbox, undefined, 'beyond the cap, only the log says');
});

test('absorb is idempotent: applied again to its own result it returns that result', (t) => {
  const now = new Date(T(2));
  const events = [finalized(1), verdict(1, true), finalized(2), verdict(2, false)];
  const once = frozen(absorb(emptyCatalogue(now), events, now, { config }));
  t.is(absorb(once, events, now, { config }), once);
  t.is(absorb(once, [], now, { config }), once);
  t.is(absorb(once, [verdict(2, false)], new Date(T(3)), { config }).outbox?.length, 1, 'a continuing incident is not announced again');
});

test("absorb keeps a continuing incident's opening time and takes its current details, announcing nothing", (t) => {
  const now = new Date(T(0));
  const arrived = [finalized(1, '1001', T(0)), finalized(2, '1002', T(0))];
  const pending = absorb(emptyCatalogue(now), arrived, now, { config });
  const late = new Date(T(16));
  const opened = frozen(absorb(pending, [], late, { config }));
  t.like(opened.alerts['objects-unvalidated'], { opened: late.toISOString(), details: { count: 2 } });
  t.is(opened.outbox?.length, 1);

  const later = new Date(T(17));
  const one = absorb(opened, [verdict(1, true, T(17), '1001')], later, { config });
  t.like(one.alerts['objects-unvalidated'], { opened: late.toISOString(), details: { count: 1, oldest: `wal/${SEG(2)}` } });
  t.regex(one.alerts['objects-unvalidated'].summary, /^1 object has waited/);
  t.is(one.outbox?.length, 1, 'nothing more announced');
  t.is(absorb(one, [], later, { config }), one);
});

test('absorb queues a resolution when an incident clears, keeping what is still unpublished', (t) => {
  const now = new Date(T(2));
  const opened = absorb(emptyCatalogue(now), [finalized(1), verdict(1, true), finalized(2), verdict(2, false)], now, { config });
  const later = new Date(T(9));
  const cleared = absorb(opened, [{ type: 'deleted', key: `wal/${SEG(2)}`, generation: '1002', time: T(8) }], later, { config });
  t.deepEqual(cleared.alerts, {});
  t.deepEqual(
    cleared.outbox?.map((m) => [m.status, m.time]),
    [
      ['open', now.toISOString()],
      ['resolved', later.toISOString()],
    ],
  );
  t.regex(cleared.outbox![1].summary, /^resolved after 7 minutes: /);
});

/** The real publisher, made slow: Pub/Sub under load, so another instance runs while a publish is in flight. */
function slowed(publisher: Publisher, ms: number): Publisher {
  return {
    async publishJson(topic, body, attributes) {
      await sleep(ms);
      return publisher.publishJson(topic, body, attributes);
    },
    close: () => publisher.close(),
  };
}

/** An outbox on `rt` with another publisher. */
function outboxWith(rt: Runtime, publisher: Publisher): CatalogueOutbox {
  return new CatalogueOutbox({ ...rt, publisher });
}

test('record commits the events and publishes the announcement on the alerts topic, emptying the outbox', async (t) => {
  const repo = await h.repo(t);
  const outbox = new CatalogueOutbox(repo.runtime());
  const now = new Date().toISOString();
  // A valid segment first: it tells the catalogue which cluster the repository holds.
  await outbox.record([finalized(0, '4', now), verdict(0, true, now, '4')]);
  const update = await outbox.record([finalized(1, '5', now), verdict(1, false, now, '5')]);
  const id = `corrupt-object:wal/${SEG(1)}:5`;
  t.deepEqual(Object.keys(update.catalogue.alerts), [id]);
  t.is(update.catalogue.outbox?.length, 1, 'the committed catalogue carries the announcement');
  const [message] = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the alert');
  t.like(message, { format: 1, id, status: 'open', kind: 'corrupt-object', cluster: CLUSTER, repository: repo.url });
  t.deepEqual(repo.alerts.received[0].attributes, { id, status: 'open', kind: 'corrupt-object', severity: 'CRITICAL' });
  const stored = await repo.catalogue();
  t.is(stored.outbox, undefined);
  t.deepEqual(Object.keys(stored.alerts), [id]);
  t.deepEqual(await repo.alerts.quiet(), [message]);
});

test('when pub/sub fails halfway, what was published leaves the outbox and the same instance publishes the rest on its next run', async (t) => {
  const repo = await h.repo(t);
  const now = new Date().toISOString();
  const rt = repo.runtime();
  // The second publish fails: a test needs Pub/Sub to refuse one message on cue.
  let calls = 0;
  const flaky: Publisher = {
    publishJson: (topic, body, attributes) => (++calls === 2 ? failingPublisher().publishJson(topic, body) : rt.publisher.publishJson(topic, body, attributes)),
    close: () => rt.publisher.close(),
  };
  const outbox = outboxWith(rt, flaky);
  await t.throwsAsync(outbox.record([finalized(1, '7', now), verdict(1, false, now, '7'), finalized(2, '8', now), verdict(2, false, now, '8')]), {
    message: /could not publish/,
  });
  const [first] = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the first alert');
  t.is(first.id, `corrupt-object:wal/${SEG(1)}:7`);
  t.deepEqual(
    (await repo.catalogue()).outbox?.map((m) => m.id),
    [`corrupt-object:wal/${SEG(2)}:8`],
  );

  // Another instance leaves it alone: its committer may still be publishing it.
  t.is(await new CatalogueOutbox(repo.runtime()).flushOutbox(), 0);
  // The instance that queued it publishes it on its next run (the event's redelivery may land there).
  t.is(await outbox.flushOutbox(), 1);
  const all = await repo.alerts.quiet();
  t.deepEqual(all.map((m) => m.id).sort(), [`corrupt-object:wal/${SEG(1)}:7`, `corrupt-object:wal/${SEG(2)}:8`]);
  t.is((await repo.catalogue()).outbox, undefined);
});

test('a message its instance could not publish goes out from any instance once the claim has run out, once', async (t) => {
  const repo = await h.repo(t);
  const now = new Date().toISOString();
  // Pub/Sub refuses everything for the instance that commits the incidents.
  await t.throwsAsync(
    outboxWith(repo.runtime(), failingPublisher()).record([
      finalized(1, '3', now),
      verdict(1, false, now, '3'),
      finalized(2, '4', now),
      verdict(2, false, now, '4'),
    ]),
  );
  const queued = Date.parse(
    (await repo.catalogue())
      .outbox!.map((m) => m.time)
      .sort()
      .at(-1)!,
  );
  t.is((await repo.catalogue()).outbox?.length, 2);

  const soon = new CatalogueOutbox(repo.runtime({ now: () => new Date(queued + OUTBOX_CLAIM_MS - 5000) }));
  t.is(await soon.flushOutbox(), 0);
  t.deepEqual(await repo.alerts.quiet(500), []);

  // Later, three flushes asked for at once on one instance share one run.
  const later = new CatalogueOutbox(repo.runtime({ now: () => new Date(queued + OUTBOX_CLAIM_MS + 1000) }));
  const counts = await Promise.all([later.flushOutbox(), later.flushOutbox(), later.flushOutbox()]);
  t.is(counts[0], 2);
  const all = await repo.alerts.quiet();
  // Each once; Pub/Sub keeps no order between messages without an ordering key.
  t.deepEqual(all.map((m) => m.id).sort(), [`corrupt-object:wal/${SEG(1)}:3`, `corrupt-object:wal/${SEG(2)}:4`]);
  t.is((await repo.catalogue()).outbox, undefined);
});

test('two instances committing at once announce an incident once', async (t) => {
  const repo = await h.repo(t);
  const now = () => new Date().toISOString();
  const rtA = repo.runtime();
  const a = outboxWith(rtA, slowed(rtA.publisher, 1500));
  const b = new CatalogueOutbox(repo.runtime());
  // A opens an incident; while its announcement is on its way to Pub/Sub, B
  // commits an unrelated change on top of A's write and flushes.
  const recordA = a.record([finalized(1, '11', now()), verdict(1, false, now(), '11')]);
  for (let i = 0; i < 100 && !(await repo.catalogue()).outbox; i++) await sleep(20);
  await b.record([finalized(2, '12', now()), verdict(2, true, now(), '12')]);
  await recordA;
  const alerts = await repo.alerts.quiet(2000);
  t.deepEqual(
    alerts.map((m) => `${m.id} ${m.status}`),
    [`corrupt-object:wal/${SEG(1)}:11 open`],
  );
  t.is((await repo.catalogue()).outbox, undefined);
});
