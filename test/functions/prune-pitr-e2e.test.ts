/**
 * Retention end to end on the local stack, as deployed: real PostgreSQL
 * archives through the installed gcwal into the GCS emulator, the bundled
 * functions validate and catalogue everything, and a Cloud Scheduler-like
 * tick makes the prune function apply `retainFull: 1`. Then the agent, with
 * nothing but the pruned bucket, restores to the earliest point `gcwal
 * status` reports (real PostgreSQL replays to it) and refuses a point one
 * second before it.
 *
 * The tests run in order on one archive: two backups with batches of rows
 * between them; prune; restore to the window's start; refuse before it.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PipelineEventMessage } from '../../core/alerts/types.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { CATALOGUE_KEY } from '../../core/layout.ts';
import { planRetention, type RetentionPlan } from '../../core/retention/plan.ts';
import { expandPlanned, plannedCount } from '../../core/retention/planned.ts';
import type { ReportedPoint, StatusReport } from '../../agent/status/report.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../local/testkit/cluster.ts';
import { listObjects, readObject, type ObjectResource } from '../../local/testkit/gcs-admin.ts';
import { installAgent, type InstalledAgent } from '../../local/testkit/install.ts';
import { runGcwal } from '../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../local/testkit/users.ts';
import { runRepoCreate } from '../../local/testkit/repo.ts';
import { walEntry } from '../../core/catalogue/runs.ts';

const PREFIX = 'clusters/prune/';
const ROWS = { A: 3000, B: 2000, C: 1000 };

let agent: InstalledAgent;
let stack: LocalStack;
let work: TempDir;
let source: Cluster;
const cleanups: (() => Promise<unknown>)[] = [];

/** Set by the first test: the backup prune kept, and the window's start as gcwal status printed it after the prune. */
let kept: { name: string; stopTime: string } | undefined;
let earliest: (ReportedPoint & { backup: string }) | undefined;

test.before(async (t) => {
  agent = await installAgent();
  work = await makeTempDir('prune-pitr', { owner: 'postgres' });
  const started = Date.now();
  stack = await startLocalStack({
    bucket: 'prune-pitr-e2e',
    prefix: PREFIX,
    pipeline: { retainFull: 1, toolEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  });
  t.log(`stack with pipeline ready in ${Date.now() - started} ms`);
  source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: stack.env });
  await runRepoCreate(agent.command, source, stack.env);
  cleanups.push(() => source.destroy());
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
  await work?.cleanup();
  await agent?.cleanup();
});

const keyOf = (o: ObjectResource) => o.name.slice(PREFIX.length);

async function insertBatch(cluster: Cluster, batch: keyof typeof ROWS): Promise<void> {
  await cluster.query(`INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g`, [batch, ROWS[batch]]);
}

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

/** gcwal backup-push as the postgres user; resolves with the backup's name. */
async function backupPush(): Promise<string> {
  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...stack.env } });
  if (pushed.code !== 0) throw new Error(`backup-push exited ${pushed.code}: ${pushed.stderr.trim()}`);
  return pushed.stdout.trim().split('\n').pop()!;
}

/** Whether the catalogue describes the live object `o` (this generation) as valid. */
function validIn(catalogue: Catalogue, o: ObjectResource): boolean {
  const key = keyOf(o);
  const entry = key.startsWith('wal/')
    ? walEntry(catalogue, key.slice(4))
    : /\/part_\d+\.tar$/.test(key)
      ? catalogue.parts[key]
      : catalogue.backups[key.split('/')[1]];
  const folded = entry !== undefined && 'folded' in entry;
  return (
    entry !== undefined &&
    (folded ? BigInt(entry.generation) >= BigInt(o.generation) : BigInt(entry.generation) === BigInt(o.generation)) &&
    entry.state === 'valid'
  );
}

/** The objects the pipeline validates one by one: WAL, backup parts, backup metadata (manifests are checked with their backup). */
const checked = (o: ObjectResource) => /^(wal\/|backups\/[^/]+\/(part_\d+\.tar|backup\.json)$)/.test(keyOf(o));

/** `2024-05-01T12:00:30.456Z` → `2024-05-01 12:00:30.456+00`, the form backup-fetch's messages use. */
const asTargetTime = (iso: string) => iso.replace('T', ' ').replace(/Z$/, '+00');

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test.serial('prune with retainFull 1 deletes exactly the planned objects: the older backup and the WAL only it needs', async (t) => {
  t.timeout(240_000);
  await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');
  await insertBatch(source, 'A');
  const first = await backupPush();
  await insertBatch(source, 'B');
  await source.switchWal();
  // One second before the second backup's end must fall after the first's,
  // so that the refusal below is the prune's doing: before it, the first
  // backup would have served that target.
  const firstMeta = JSON.parse((await readObject(stack, `${PREFIX}backups/${first}/backup.json`)).body.toString('utf8')) as { stopTime: string };
  const firstStop = Date.parse(firstMeta.stopTime);
  await sleep(Math.max(0, firstStop + 1500 - Date.now()));
  const second = await backupPush();
  await insertBatch(source, 'C');
  await source.waitForArchived(await source.switchWal(), 60_000);
  t.deepEqual(await counts(source), ROWS);
  const [{ failed }] = await source.query<{ failed: string }>('SELECT failed_count AS failed FROM pg_stat_archiver');
  t.is(Number(failed), 0, 'archive_command never failed');

  // Until the catalogue describes every live object, both backups included, as valid.
  let before: ObjectResource[] = [];
  let catalogue: Catalogue | undefined;
  let waiting: string[] = [];
  const archivedAt = Date.now();
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(250)) {
    before = await listObjects(stack, PREFIX);
    catalogue = (await stack.pipeline!.readCatalogue()).catalogue;
    waiting = before
      .filter(checked)
      .filter((o) => !validIn(catalogue!, o))
      .map(keyOf);
    if (waiting.length === 0 && [first, second].every((b) => catalogue!.backups[b]?.state === 'valid')) break;
  }
  t.deepEqual(waiting, [], `not valid in the catalogue: ${waiting.join(', ')}`);
  t.log(`${before.length} objects, all valid in the catalogue ${Date.now() - archivedAt} ms after the last was archived`);
  t.deepEqual(Object.keys(catalogue!.backups).sort(), [first, second].sort());
  t.deepEqual(
    [first, second].map((b) => catalogue!.backups[b].state),
    ['valid', 'valid'],
  );
  const b1 = catalogue!.backups[first];
  const b2 = catalogue!.backups[second];
  t.true(Date.parse(b2.stopTime) - 1000 > Date.parse(b1.stopTime), 'the second backup ended more than a second after the first');
  t.true(b1.startWalSegment < b2.startWalSegment, 'the backups start in different segments');

  // Before the prune, a target a second before the second backup's end is restorable, from the first.
  const target = new Date(Date.parse(b2.stopTime) - 1000).toISOString();
  const probe = path.join(work.path, 'before-prune');
  const served = await runGcwal(agent.command, ['backup-fetch', probe, 'LATEST', '--target-time', target, '--gcwal-command', agent.command], {
    asUser: 'postgres',
    env: stack.env,
  });
  t.is(served.code, 0, served.stderr);
  t.regex(served.stdout, new RegExp(`^restored ${first} into `));

  // The plan, made here from the same catalogue with the function's policy.
  const plan: RetentionPlan = planRetention(catalogue!, { retainFull: 1 }, new Date());
  t.deepEqual(plan.keptBackups, [second]);
  t.deepEqual(plan.deletedBackups, [first]);
  // A range of a run's segments planned alike stands for each of them.
  const planned = [...expandPlanned(plan.delete)].map((o) => o.key).sort();
  for (const key of b1.keys) t.true(planned.includes(key), `the plan deletes ${key} of the first backup`);
  t.true(
    planned.some((k) => k.startsWith('wal/')),
    'the plan deletes WAL',
  );
  t.log(`plan: delete ${planned.length} objects, keep ${plannedCount(plan.keep)}; ${plan.reasons.map((r) => `${r.action} ${r.code} ${r.objects}`).join(', ')}`);

  await stack.pipeline!.tick('prune');
  const pruned = (await stack.pipeline!.nextEvent((e) => e.kind === 'pruned' && e.repository === stack.env.GCWAL_REPO, 60_000)) as Extract<
    PipelineEventMessage,
    { kind: 'pruned' }
  >;
  t.like(pruned, { dryRun: false, deletedBackups: [first], keptBackups: [second], skipped: [] });
  t.deepEqual(pruned.deleted.map((d) => d.key).sort(), planned, 'the function deleted what the plan says');

  // The bucket, as its admin sees it, lost exactly the planned keys and gained none.
  const after = await listObjects(stack, PREFIX);
  const beforeKeys = new Set(before.map(keyOf));
  const afterKeys = new Set(after.map(keyOf));
  t.deepEqual([...beforeKeys].filter((k) => !afterKeys.has(k)).sort(), planned, 'deleted: exactly the plan');
  t.deepEqual(
    [...afterKeys].filter((k) => !beforeKeys.has(k)),
    [],
    'nothing new appeared',
  );
  t.true(afterKeys.has(CATALOGUE_KEY));
  t.false(
    [...afterKeys].some((k) => k.startsWith(`backups/${first}/`)),
    'nothing of the first backup is left',
  );
  for (const key of b2.keys) t.true(afterKeys.has(key), `${key} of the second backup is kept`);
  // WAL: everything from the second backup's start segment on stays, everything before it goes.
  const walBefore = [...beforeKeys].filter((k) => k.startsWith('wal/')).map((k) => k.slice(4));
  const fromKept = walBefore.filter((n) => n.slice(0, 24) >= b2.startWalSegment);
  t.true(fromKept.includes(b2.stopWalSegment), "the second backup's WAL was archived");
  t.deepEqual(
    fromKept.filter((n) => !afterKeys.has(`wal/${n}`)),
    [],
    "WAL from the kept backup's start on is all there",
  );
  t.deepEqual(
    walBefore.filter((n) => n.slice(0, 24) < b2.startWalSegment && afterKeys.has(`wal/${n}`)),
    [],
    'WAL before it is gone',
  );

  // The catalogue forgot the first backup; gcwal status, as the agent, reports the window from the second.
  const { catalogue: prunedCatalogue } = await stack.pipeline!.readCatalogue();
  t.deepEqual(Object.keys(prunedCatalogue.backups), [second]);
  const status = await runGcwal(agent.command, ['status', '--json'], { env: stack.env });
  t.is(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout) as StatusReport;
  t.like(report, { source: 'catalogue', alerts: [] });
  t.deepEqual(
    report.backups.map((b) => [b.name, b.state]),
    [[second, 'valid']],
  );
  t.deepEqual(
    report.timelines.map((tl) => tl.timeline),
    [1],
  );
  const window = report.timelines[0].window;
  t.like(window.earliest, { backup: second, lsn: b2.stopLsn, time: b2.stopTime });
  t.deepEqual(report.timelines[0].gaps, [], 'no gap: the WAL before the window is gone from its start');
  earliest = window.earliest ?? undefined;
  kept = { name: second, stopTime: b2.stopTime };
});

test.serial('after the prune, a point-in-time restore to the earliest point of the window brings back everything committed before it', async (t) => {
  t.timeout(180_000);
  if (!earliest || !kept) return t.fail('needs the prune of the first test');
  const dest = path.join(work.path, 'at-earliest');
  // The time exactly as gcwal status printed it.
  const fetched = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-time', earliest.time, '--gcwal-command', agent.command], {
    asUser: 'postgres',
    env: stack.env,
  });
  t.is(fetched.code, 0, fetched.stderr);
  t.regex(fetched.stdout, new RegExp(`^restored ${kept.name} into `));
  t.regex(fetched.stdout, new RegExp(`replay WAL from the repository up to .*${escapeRegExp(asTargetTime(earliest.time))}`));

  const restored = await startClusterFromDirectory(dest, { serverEnv: stack.env });
  cleanups.push(() => restored.destroy());
  // recovery_target_action is pause: the server stops replaying at the first commit after the target (batch C's).
  let state = '';
  for (const deadline = Date.now() + 90_000; Date.now() < deadline && state !== 'paused'; await sleep(200)) {
    [{ state }] = await restored.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
  }
  t.is(state, 'paused', `recovery did not pause at its target:\n${await restored.logTail()}`);
  t.true(await restored.isInRecovery());
  t.deepEqual(await counts(restored), { A: ROWS.A, B: ROWS.B }, 'batches A and B, committed before the target, and not C');
  const log = await restored.logTail(200);
  t.regex(log, /recovery stopping before commit of transaction/);
  t.notRegex(log, /before consistent recovery point|ended before configured recovery target/);
});

test.serial('after the prune, a target one second before the earliest point is refused with exit 2, naming that point, writing nothing', async (t) => {
  t.timeout(60_000);
  if (!earliest || !kept) return t.fail('needs the prune of the first test');
  const target = new Date(Date.parse(earliest.time) - 1000).toISOString();
  const absent = path.join(work.path, 'refused-absent');
  const empty = path.join(work.path, 'refused-empty');
  await mkdir(empty, { mode: 0o700 });
  if (runningAsRoot()) {
    const pg = await postgresUser();
    await chown(empty, pg.uid, pg.gid);
  }
  for (const dest of [absent, empty]) {
    const refused = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-time', target, '--gcwal-command', agent.command], {
      asUser: 'postgres',
      env: stack.env,
    });
    t.is(refused.code, 2, refused.stderr);
    t.is(refused.stdout, '');
    const lines = refused.stderr.trim().split('\n');
    t.is(lines.length, 1, `one line: ${refused.stderr}`);
    t.regex(lines[0], /^gcwal: error: recovery target time .* is before the earliest restorable point /);
    t.true(lines[0].includes(`earliest restorable point ${asTargetTime(earliest.time)} (the end of backup ${kept.name}`), lines[0]);
  }
  t.false(existsSync(absent), 'the destination was not created');
  t.deepEqual(await readdir(empty), [], 'nothing was written into the empty destination');
});
