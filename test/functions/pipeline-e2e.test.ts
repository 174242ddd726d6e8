/**
 * The pipeline end to end on the local stack, as deployed: real PostgreSQL
 * archiving through the installed gcwal (keyless, as the agent's identity)
 * into the GCS emulator, whose object events reach the bundled functions
 * under the real functions-framework (running as their own identity), which
 * publish to gcloud's Pub/Sub emulator, read here by a real subscriber.
 *
 * The tests run in order on one archive: archive under load and see it all
 * validated; corrupt objects in the bucket and get one alert each; delete a
 * segment and get a gap; let archiving stall and hear it from the watchdog.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertMessage } from '../../core/alerts/types.ts';
import { recoverableWindows } from '../../core/catalogue/derive.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { formatLsn } from '../../core/wal/lsn.ts';
import { parseWalSegmentName, segmentStartLsn } from '../../core/wal/name.ts';
import type { StatusReport } from '../../agent/status/report.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { deleteObject, listObjects, readObject, writeObject, type ObjectResource } from '../../local/testkit/gcs-admin.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import { walEntries, walEntry } from '../../core/catalogue/runs.ts';

const PREFIX = 'clusters/main/';
const OTHER = 'clusters/other';
const SEGMENT_SIZE = 16 * 1024 * 1024;
const SEGMENT = /^[0-9A-F]{24}$/;

let agent: InstalledAgent;
let stack: LocalStack;
let source: Cluster;
let systemIdentifier = '';
/** the archive's segments on timeline 1 after the load, ascending */
let segments: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async (t) => {
  agent = await installAgent();
  const started = Date.now();
  stack = await startLocalStack({
    bucket: 'pipeline-e2e',
    prefix: PREFIX,
    pipeline: { env: { GCWAL_GAP_GRACE_MINUTES: '0', GCWAL_STALL_MINUTES: '1' }, toolEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  });
  t.log(`stack with pipeline ready in ${Date.now() - started} ms`);
  source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: stack.env });
  await runRepoCreate(agent.command, source, stack.env);
  cleanups.push(() => source.destroy());
  [{ id: systemIdentifier }] = await source.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
});

test.after.always(async (t) => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  if (stack?.pipeline) {
    for (const [name, log] of Object.entries(stack.pipeline.logs())) {
      const errors = log.split('\n').filter((l) => /"severity":"(ERROR|CRITICAL)"|Error:/.test(l));
      if (errors.length > 0) t.log(`${name}: ${errors.length} error lines, the last: ${errors.at(-1)!.slice(0, 300)}`);
    }
  }
  await stack?.close();
  await agent?.cleanup();
});

const keyOf = (o: ObjectResource) => o.name.slice(PREFIX.length);

/** What the catalogue says about the live object `o`: its state when it describes this generation. */
function stateOf(catalogue: Catalogue, o: ObjectResource): { state: string; validated?: string } | undefined {
  const key = keyOf(o);
  const entry = key.startsWith('wal/')
    ? walEntry(catalogue, key.slice(4))
    : /\/part_\d+\.tar$/.test(key)
      ? catalogue.parts[key]
      : catalogue.backups[key.split('/')[1]];
  // A folded segment's own generation is not kept, only that it is at most its run's.
  const folded = entry !== undefined && 'folded' in entry;
  return entry && (folded ? BigInt(entry.generation) >= BigInt(o.generation) : BigInt(entry.generation) === BigInt(o.generation)) ? entry : undefined;
}

/** The objects the pipeline validates one by one: WAL, backup parts, backup metadata (manifests are checked with their backup). */
async function checkedObjects(): Promise<ObjectResource[]> {
  return (await listObjects(stack, PREFIX)).filter((o) => /^(wal\/|backups\/[^/]+\/(part_\d+\.tar|backup\.json)$)/.test(keyOf(o)));
}

async function insertBatch(cluster: Cluster, rows: number): Promise<void> {
  await cluster.query(`INSERT INTO items (payload) SELECT repeat(md5(g::text), 6) FROM generate_series(1, ${rows}) g`);
}

function mine(predicate: (a: AlertMessage) => boolean): (a: AlertMessage) => boolean {
  return (a) => a.status === 'open' && a.repository === stack.env.GCWAL_REPO && predicate(a);
}

test.serial('archived under load, every WAL object and backup part is validated and the window is what was archived', async (t) => {
  t.timeout(240_000);
  await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, payload text)');
  const loadStarted = Date.now();
  let writing = true;
  const writers = Array.from({ length: 2 }, async () => {
    for (let i = 0; i < 6; i++) await insertBatch(source, 5000);
  });
  let switches = 0;
  const switcher = (async () => {
    while (writing || switches < 10) {
      await sleep(200);
      await insertBatch(source, 200);
      await source.switchWal();
      switches++;
    }
  })();
  const pushed = runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...stack.env } });
  await Promise.all(writers);
  const backup = await pushed;
  writing = false;
  await switcher;
  t.is(backup.code, 0, backup.stderr);
  const backupName = backup.stdout.trim().split('\n').pop()!;
  const last = await source.switchWal();
  await source.waitForArchived(last, 90_000);
  const archivedAt = Date.now();
  const [{ failed }] = await source.query<{ failed: string }>('SELECT failed_count AS failed FROM pg_stat_archiver');
  t.is(Number(failed), 0, 'archive_command never failed');

  // Poll the catalogue until it describes every live object as valid.
  let objects: ObjectResource[] = [];
  let catalogue: Catalogue | undefined;
  let waiting: string[] = [];
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(250)) {
    objects = await checkedObjects();
    catalogue = (await stack.pipeline!.readCatalogue()).catalogue;
    waiting = objects.filter((o) => stateOf(catalogue!, o)?.state !== 'valid').map(keyOf);
    if (waiting.length === 0) break;
  }
  const settledAt = Date.now();
  t.deepEqual(waiting, [], `not valid in the catalogue: ${waiting.join(', ')}`);
  segments = objects
    .map(keyOf)
    .filter((k) => k.startsWith('wal/'))
    .map((k) => k.slice(4))
    .filter((n) => SEGMENT.test(n))
    .sort();
  t.true(segments.length >= 10, `only ${segments.length} segments archived`);
  t.true(
    objects.some((o) => /\/part_\d+\.tar$/.test(o.name)),
    'the backup has parts',
  );
  t.true(segments.includes(last));

  // A folded segment's validation time is its run's latest: measure it from the run's last segment's arrival.
  const arrived = (o: ObjectResource) =>
    catalogue!.walRuns.find((r) => keyOf(o).startsWith('wal/') && r.first <= keyOf(o).slice(4) && keyOf(o).slice(4) <= r.last)?.lastCreated ?? o.timeCreated;
  const latencies = objects
    .map((o) => ({ key: keyOf(o), ms: Date.parse(stateOf(catalogue!, o)!.validated!) - Date.parse(arrived(o)) }))
    .sort((a, b) => a.ms - b.ms);
  const worst = latencies.at(-1)!;
  t.log(
    `${objects.length} objects (${segments.length} segments) archived in ${((archivedAt - loadStarted) / 1000).toFixed(1)} s; all valid in the catalogue ${settledAt - archivedAt} ms after the last was archived`,
  );
  t.log(`creation → validated: median ${latencies[latencies.length >> 1].ms} ms, max ${worst.ms} ms (${worst.key})`);
  // Latency is printed, not asserted: a loaded machine stretches it.

  // The catalogue holds exactly what is in the bucket, and no incident.
  const wal = await listObjects(stack, `${PREFIX}wal/`);
  t.deepEqual([...walEntries(catalogue!)].map((e) => e.name).sort(), wal.map((o) => keyOf(o).slice(4)).sort());
  for (const o of wal) t.truthy(stateOf(catalogue!, o), `${keyOf(o)} at generation ${o.generation}`);
  t.is(catalogue!.systemIdentifier, systemIdentifier);
  t.deepEqual(Object.keys(catalogue!.alerts), []);
  t.deepEqual(Object.keys(catalogue!.backups), [backupName]);

  // The window: from the backup's stop to the end of the last archived segment.
  const meta = JSON.parse((await readObject(stack, `${PREFIX}backups/${backupName}/backup.json`)).body.toString('utf8')) as {
    stopLsn: string;
    stopTime: string;
  };
  const windows = recoverableWindows(catalogue!);
  t.deepEqual(
    windows.map((w) => w.timeline),
    [1],
  );
  const [window] = windows;
  t.like(window.earliest, { backup: backupName, lsn: meta.stopLsn, time: meta.stopTime });
  const lastSegNo = parseWalSegmentName(segments.at(-1)!, SEGMENT_SIZE).segNo;
  t.like(window.latest, { segment: segments.at(-1), lsn: formatLsn(segmentStartLsn(lastSegNo + 1n, SEGMENT_SIZE)) });
  t.is(window.spans.length, 1);
  t.is(window.spans[0].unvalidatedSegments, 0);

  // gcwal status, as the agent's identity, reports the same from the catalogue.
  const status = await runGcwal(agent.command, ['status', '--json'], { env: stack.env });
  t.is(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout) as StatusReport;
  t.like(report, { source: 'catalogue', validated: true, alerts: [], cluster: { systemIdentifier } });
  t.deepEqual(
    report.timelines.map((tl) => tl.timeline),
    [1],
  );
  t.like(report.timelines[0].window, { earliest: window.earliest, latest: { segment: window.latest!.segment, lsn: window.latest!.lsn } });
  t.deepEqual(
    report.backups.map((b) => [b.name, b.state]),
    [[backupName, 'valid']],
  );
});

test.serial('an object corrupted in the bucket in any of five ways raises one critical alert each on gcwal-alerts', async (t) => {
  t.timeout(180_000);
  t.true(segments.length >= 10, 'needs the archive of the first test');
  // A second, throwaway cluster archiving elsewhere in the bucket, out of the pipeline's sight.
  const other = await startCluster({
    archiveCommand: `${agent.command} wal-push %p`,
    serverEnv: { ...stack.env, GCWAL_REPO: `gs://${stack.bucket}/${OTHER}` },
  });
  cleanups.push(() => other.destroy());
  await runRepoCreate(agent.command, other, { ...stack.env, GCWAL_REPO: `gs://${stack.bucket}/${OTHER}` });
  await other.query('CREATE TABLE t (x int)');
  let otherLast = '';
  for (let i = 0; i < 6; i++) {
    await other.query('INSERT INTO t SELECT generate_series(1, 100)');
    otherLast = await other.switchWal();
  }
  await other.waitForArchived(otherLast, 60_000);
  await other.destroy();

  const [flipped, truncated, foreign, disguised, renamed] = segments.slice(1, 6);
  const renamedFrom = segments[9];
  const wal = (name: string) => `${PREFIX}wal/${name}`;
  const original = async (name: string) => readObject(stack, name);
  const cases: { what: string; name: string; make: () => Promise<{ body: Buffer; resource: ObjectResource }>; problem: RegExp }[] = [
    {
      what: 'bytes flipped',
      name: flipped,
      make: async () => {
        const o = await original(wal(flipped));
        const body = Buffer.from(o.body);
        for (let i = body.length >> 1; i < (body.length >> 1) + 16; i++) body[i] ^= 0xff;
        return { body, resource: o.resource };
      },
      problem: /crc32|checksum/i,
    },
    {
      what: 'truncated',
      name: truncated,
      make: async () => {
        const o = await original(wal(truncated));
        return { body: o.body.subarray(0, o.body.length >> 1), resource: o.resource };
      },
      problem: /truncated|size/i,
    },
    {
      what: "another cluster's WAL",
      name: foreign,
      make: () => original(`${OTHER}/wal/${foreign}`),
      problem: new RegExp(`cluster \\d+, not by the repository's cluster ${systemIdentifier}`),
    },
    {
      what: "another cluster's WAL with metadata naming this cluster",
      name: disguised,
      make: async () => {
        const o = await original(`${OTHER}/wal/${disguised}`);
        return { body: o.body, resource: { ...o.resource, metadata: { ...o.resource.metadata, 'gcwal-system-id': systemIdentifier } } };
      },
      problem: /system identifier|cluster/i,
    },
    {
      what: "a segment under another segment's name",
      name: renamed,
      make: () => original(wal(renamedFrom)),
      problem: /holds WAL from [0-9A-F]+\/[0-9A-F]+, but its name places it at/,
    },
  ];
  const results = await Promise.all(
    cases.map(async (c) => {
      const { body, resource } = await c.make();
      const written = await writeObject(stack, wal(c.name), body, { contentType: resource.contentType, metadata: resource.metadata });
      const at = Date.now();
      const key = `wal/${c.name}`;
      const alert = await stack.pipeline!.nextAlert(
        mine((a) => a.kind === 'corrupt-object' && a.details.key === key && a.details.generation === written.generation),
        60_000,
      );
      return { c, key, written, alert, ms: Date.now() - at };
    }),
  );
  for (const { c, key, written, alert, ms } of results) {
    t.log(`${c.what} (${c.name}): alert after ${ms} ms: ${alert.details.problem}`);
    t.like(alert, { kind: 'corrupt-object', severity: 'CRITICAL', cluster: systemIdentifier, id: `corrupt-object:${key}:${written.generation}` }, c.what);
    t.regex(String(alert.details.problem), c.problem, c.what);
  }
  t.true(
    results.some((r) => r.c.name === foreign),
    'the foreign segment existed in the other archive',
  );
  const { catalogue } = await stack.pipeline!.readCatalogue();
  for (const c of cases) t.is(walEntry(catalogue, c.name)!.state, 'corrupt', c.what);
});

test.serial("a segment deleted behind the pipeline's back raises a wal-gap alert", async (t) => {
  t.timeout(120_000);
  const gone = segments[7];
  t.truthy(gone && segments[8], 'needs a segment with a later one');
  const at = Date.now();
  await deleteObject(stack, `${PREFIX}wal/${gone}`);
  const alert = await stack.pipeline!.nextAlert(
    mine((a) => a.kind === 'wal-gap' && a.details.missing === gone),
    60_000,
  );
  t.log(`wal-gap alert ${Date.now() - at} ms after the delete: ${alert.summary}`);
  t.like(alert, {
    id: `wal-gap:1:${gone}`,
    severity: 'CRITICAL',
    cluster: systemIdentifier,
    details: { timeline: 1, missing: gone, count: 1, after: segments[6], before: segments[8] },
  });

  const status = await runGcwal(agent.command, ['status', '--json'], { env: stack.env });
  t.is(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout) as StatusReport;
  t.like(report.timelines[0].gaps, [{ missing: gone, count: 1, after: segments[6], before: segments[8] }]);
  t.true(
    report.alerts.some((a) => a.id === `wal-gap:1:${gone}`),
    'status lists the open gap alert',
  );
});

test.serial('when no WAL arrives for longer than the threshold, the watchdog raises archiving-stalled', async (t) => {
  t.timeout(180_000);
  const pipeline = stack.pipeline!;
  const { catalogue } = await pipeline.readCatalogue();
  const lastArrival = Date.parse(catalogue.lastWalArrival!);
  t.false(Number.isNaN(lastArrival));
  // GCWAL_STALL_MINUTES=1: a minute after the last WAL object, plus a margin.
  const wait = lastArrival + 62_000 - Date.now();
  t.log(`waiting ${Math.max(0, wait)} ms for the stall threshold`);
  if (wait > 0) await sleep(wait);
  t.false(pipeline.alerts().some(mine((a) => a.kind === 'archiving-stalled')), 'nothing ran the alerts before the tick');
  const watchdogLog = pipeline.logs().watchdog.length;
  await pipeline.tick('watchdog');
  const alert = await pipeline.nextAlert(
    mine((a) => a.kind === 'archiving-stalled'),
    60_000,
  );
  t.like(alert, {
    id: 'archiving-stalled',
    severity: 'ERROR',
    cluster: systemIdentifier,
    details: { lastWalArrival: catalogue.lastWalArrival, stallSeconds: 60 },
  });
  // The message can overtake the log line that follows its publication.
  const announced = /"message":"alert open: no wal has reached the archive/;
  for (const deadline = Date.now() + 10_000; !announced.test(pipeline.logs().watchdog.slice(watchdogLog)) && Date.now() < deadline; ) await sleep(100);
  t.regex(pipeline.logs().watchdog.slice(watchdogLog), announced, 'the watchdog announced it');
});

test.serial('every announcement reached the subscriber once, although several function instances flush one outbox', async (t) => {
  // Let anything still in flight arrive.
  await sleep(2000);
  const received = stack.pipeline!.alerts().filter((a) => a.repository === stack.env.GCWAL_REPO);
  const keys = received.map((a) => `${a.id} ${a.status} ${a.time}`);
  const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
  t.log(
    `${received.length} alert messages: ${received.filter((a) => a.status === 'open').length} openings, ${received.filter((a) => a.status === 'resolved').length} resolutions`,
  );
  t.deepEqual(twice, []);
  const { catalogue } = await stack.pipeline!.readCatalogue();
  t.is(catalogue.outbox, undefined, 'nothing left to publish');
});
