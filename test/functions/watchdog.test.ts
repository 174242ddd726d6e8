/**
 * The watchdog function in-process at injected times (Runtime overrides.now),
 * on a gs:// repository of real WAL catalogued by the catalogue and validate
 * functions; alerts read from gcloud's Pub/Sub emulator by a real subscriber.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCatalogue } from '../../core/catalogue/store.ts';
import { CATALOGUE_KEY, walObjectKey } from '../../core/layout.ts';
import { makeCatalogueHandler } from '../../functions/catalogue.ts';
import type { Runtime } from '../../functions/lib/runtime.ts';
import { makeValidateHandler } from '../../functions/validate.ts';
import { makeWatchdogHandler, METRICS_MESSAGE } from '../../functions/watchdog.ts';
import { ran, schedulerEvent, startHarness, type Harness, type StorageCloudEvent, type TestRepo } from './harness.ts';
import { pushWal, startWalSource, type WalSource } from './wal-source.ts';

let h: Harness;
let wal: WalSource;
let segments: string[];

test.before(async () => {
  [h, wal] = await Promise.all([startHarness(), startWalSource()]);
  await wal.produce(4);
  segments = (await wal.archived()).filter((n) => /^[0-9A-F]{24}$/.test(n));
});

test.after.always(async () => {
  await Promise.all([h?.close(), wal?.stop()]);
});

const MINUTE = 60_000;
const tick = async (rt: Runtime) => ran(await makeWatchdogHandler(() => rt)(schedulerEvent('gcwal-watchdog')));

async function push(repo: TestRepo, name: string): Promise<StorageCloudEvent> {
  const info = await pushWal(repo.storage, wal, name);
  return repo.event(walObjectKey(name), 'finalized', info.generation);
}

test('archiving stalled is raised once by the watchdog at an injected time, and resolved when wal arrives', async (t) => {
  const repo = await h.repo(t);
  let clock = new Date();
  const rt = () => repo.runtime({ now: () => clock });
  for (const name of segments.slice(0, 3)) await makeValidateHandler(rt)(await push(repo, name));
  const last = Date.parse((await repo.catalogue()).lastWalArrival!);

  // Half an hour and a second after the last segment (GCWAL_STALL_MINUTES defaults to 30).
  clock = new Date(last + 30 * MINUTE + 1000);
  const first = await tick(rt());
  t.deepEqual(
    first.open.map((a) => a.id),
    ['archiving-stalled'],
  );
  const [open] = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the stall alert');
  t.like(open, {
    format: 1,
    id: 'archiving-stalled',
    status: 'open',
    kind: 'archiving-stalled',
    severity: 'ERROR',
    cluster: wal.systemIdentifier,
    repository: repo.url,
    time: clock.toISOString(),
    details: { lastWalArrival: new Date(last).toISOString(), stallSeconds: 1800 },
  });
  t.regex(open.summary, /^no wal has reached the archive since .*, longer than 30 minutes: check archive_command/);

  // The next scheduled run: still stalled, already announced.
  clock = new Date(clock.getTime() + 1000);
  const second = await tick(rt());
  t.deepEqual(
    second.open.map((a) => [a.id, a.opened]),
    [['archiving-stalled', first.open[0].opened]],
  );
  t.is((await repo.alerts.quiet()).length, 1);

  // Archiving resumes: a segment created a few seconds after the last one
  // arrives, and is under 30 minutes old at the next instant.
  while (Date.now() < last + 5000) await sleep(100);
  const arrival = await push(repo, segments[3]);
  t.true(Date.parse(arrival.data.timeCreated as string) > last + 3000);
  clock = new Date(clock.getTime() + 1000);
  await makeValidateHandler(rt)(arrival);
  const resolved = await repo.alerts.waitFor((ms) => ms.find((m) => m.status === 'resolved'), 'the resolution');
  t.like(resolved, { id: 'archiving-stalled', status: 'resolved', kind: 'archiving-stalled', severity: 'ERROR' });

  clock = new Date(clock.getTime() + 1000);
  t.deepEqual((await tick(rt())).open, []);
  t.deepEqual(
    (await repo.alerts.quiet()).map((m) => m.status),
    ['open', 'resolved'],
  );
});

test('objects left unvalidated raise an alert, and validating them resolves it', async (t) => {
  const repo = await h.repo(t);
  let clock = new Date();
  const rt = () => repo.runtime({ now: () => clock });
  // The catalogue function sees them arrive; the validate function never ran.
  const events = [await push(repo, segments[0]), await push(repo, segments[1])];
  for (const e of events) await makeCatalogueHandler(rt)(e);
  t.deepEqual(
    Object.values((await repo.catalogue()).wal).map((e) => e.state),
    ['pending', 'pending'],
  );
  t.deepEqual((await tick(rt())).open, [], 'fresh objects are not late yet');

  const newest = Math.max(...events.map((e) => Date.parse(e.data.timeCreated as string)));
  clock = new Date(newest + 16 * MINUTE);
  const { open } = await tick(rt());
  t.deepEqual(
    open.map((a) => a.id),
    ['objects-unvalidated'],
  );
  t.like(open[0].details, { count: 2, oldest: walObjectKey(segments[0]), keys: [walObjectKey(segments[0]), walObjectKey(segments[1])] });
  const [alert] = await repo.alerts.waitFor((ms) => (ms.length > 0 ? ms : undefined), 'the alert');
  t.like(alert, { id: 'objects-unvalidated', status: 'open', severity: 'WARNING' });
  t.regex(alert.summary, /^2 objects have waited more than 15 minutes for validation/);

  // One validated: the incident continues (its details change), nothing is announced.
  await makeValidateHandler(rt)(events[0]);
  t.like((await repo.catalogue()).alerts['objects-unvalidated'].details, { count: 1, oldest: walObjectKey(segments[1]) });
  t.is((await repo.alerts.quiet()).length, 1);
  await makeValidateHandler(rt)(events[1]);
  const resolved = await repo.alerts.waitFor((ms) => ms.find((m) => m.status === 'resolved'), 'the resolution');
  t.like(resolved, { id: 'objects-unvalidated', severity: 'WARNING' });
  // The resolution repeats the incident as it last stood.
  t.regex(resolved.summary, /^resolved after under a minute: 1 object has waited more than 15 minutes/);
  t.deepEqual((await repo.catalogue()).alerts, {});
});

test('the watchdog on a repository with nothing archived yet announces nothing and writes nothing', async (t) => {
  const repo = await h.repo(t);
  const outcome = await tick(repo.runtime({ now: () => new Date(Date.now() + 90 * 24 * 60 * MINUTE) }));
  t.deepEqual(outcome.open, []);
  t.is(await repo.storage.stat(CATALOGUE_KEY), undefined);
  t.deepEqual(await repo.alerts.quiet(), []);
  t.is((await readCatalogue(repo.storage)).generation, '0');
});

test('each watchdog run logs the pipeline figures as one structured entry: archive lag, pending objects, open alerts by kind', async (t) => {
  const repo = await h.repo(t);
  let clock = new Date();
  const rt = () => repo.runtime({ now: () => clock });
  const events = [await push(repo, segments[0]), await push(repo, segments[1])];
  for (const e of events) await makeCatalogueHandler(rt)(e);
  const last = Date.parse((await repo.catalogue()).lastWalArrival!);
  clock = new Date(last + 16 * MINUTE);
  await tick(rt());
  const entries = repo.logs.filter((l) => l.message === METRICS_MESSAGE);
  t.is(entries.length, 1);
  t.like(entries[0], {
    severity: 'INFO',
    repository: repo.url,
    metrics: {
      archiveLagSeconds: 16 * 60,
      pendingObjects: 2,
      windowStart: null,
      lastValidBackupAgeSeconds: null,
      openAlertsTotal: 1,
      openAlerts: { objects_unvalidated: 1, wal_gap: 0 },
    },
  });
});
