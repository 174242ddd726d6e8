/**
 * Function cold-start benchmark: each deployable bundle
 * (dist/functions/<name>/index.mjs with its package.json) in a fresh process
 * under the real functions-framework CLI, as Cloud Functions runs it, timed
 * from spawn to the port accepting connections and to the 2xx answer to its
 * first event, then the same event again on the warm process, and the
 * process's peak RSS (VmHWM). validate and catalogue get the real
 * `google.cloud.storage.object.v1.finalized` CloudEvent the GCS emulator sent
 * for a real 16 MiB lzo segment that `gcwal wal-push` put in a gs:// bucket
 * of the local stack; prune and watchdog get a Cloud Scheduler tick as
 * Eventarc delivers it. The functions run with the environment
 * local/pipeline.ts gives them: their own identity (objectAdmin) behind a
 * metadata-server stand-in, gcloud's Pub/Sub emulator with the topics.
 * A do-nothing function under the same framework is the reference.
 *
 * Figures are printed, never asserted.
 */
import { execFile } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AlertMessage, PipelineEventMessage } from '../core/alerts/types.ts';
import { CATALOGUE_KEY, walObjectKey } from '../core/layout.ts';
import { PIPELINE_TOPICS, pipelineSettings } from '../local/pipeline.ts';
import { startMetadataServer } from '../local/metadata/server.ts';
import { startPubSubEmulator } from '../local/pubsub/emulator.ts';
import { startLocalStack, type LocalStack } from '../local/stack.ts';
import { installAgent, projectRoot } from '../local/testkit/install.ts';
import { makeTempDir } from '../local/testkit/tmp.ts';
import type { Cleanups } from './lib/cleanup.ts';
import { pullAll, schedulerEvent, startEventCapture } from './lib/function-events.ts';
import { measureColdStart, prepareFunctionDir, prepareNoopDir, type ColdStart, type EventRequest, type FunctionDir } from './lib/function-process.ts';
import { postgresEnv, runOk } from './lib/proc.ts';
import { fixed, formatTable, median } from './lib/stats.ts';
import { generateWal } from './lib/walgen.ts';
import { createRepoForSegment } from './lib/repo.ts';

/** How to run the functions cold-start benchmark. */
export interface FunctionsBenchOptions {
  /** timed cold starts per function, one new segment each (after one untimed warm-up round) */
  rounds: number;
  log: (line: string) => void;
}

/** The issue's targets. */
const SEGMENT_TARGET_MS = 300;
const RSS_TARGET_BYTES = 256e6;
const PREFIX = 'bench';
const SUBSCRIPTIONS = { events: 'gcwal-events-bench', alerts: 'gcwal-alerts-bench' };
const LOAD_SCRIPT = fileURLToPath(new URL('./lib/load-clients.mjs', import.meta.url));

/** In-process load times of the client libraries, fresh process each (bench/lib/load-clients.mjs). */
interface Loads {
  storage: number[];
  pubsub: number[];
  /** pubsub loaded after storage in one process: what validate's first event pays for it */
  pubsubAfterStorage: number[];
}

/** One function's figures over the rounds. */
interface Row {
  name: string;
  runs: ColdStart[];
  /** validate only: durationMs of its published outcome, first and second event */
  coldValidationMs: number[];
  warmValidationMs: number[];
  problems: string[];
}

/** What a function is, what it is sent, and how its outcome is checked. */
interface Subject {
  row: Row;
  fn: FunctionDir;
  event(segment: string): EventRequest;
  /** the second event; default the first again (a redelivery) */
  second?(segment: string): EventRequest;
  check(segment: string, events: PipelineEventMessage[], row: Row, timed: boolean): Promise<void>;
}

/**
 * Build the segments and the stack, run a warm-up round and `rounds` timed
 * rounds, and resolve with the report (Markdown). Everything started is
 * stopped with `parent`'s cleanups.
 */
export async function runFunctionsBench(options: FunctionsBenchOptions, parent: Cleanups): Promise<string> {
  return parent.scope('the functions cold-start bench', async (cleanups) => {
    const { log } = options;
    const loadAtStart = os.loadavg();
    const agent = await installAgent();
    cleanups.add('the installed agent', agent.cleanup);
    const work = await makeTempDir('bench-functions', { owner: 'postgres' });
    cleanups.add('the functions bench directory', work.cleanup);
    const built = path.join(projectRoot, 'dist/functions');
    const fnDir = (name: string) => prepareFunctionDir(path.join(built, name), name, path.join(work.path, 'functions', name));
    const dirs = { validate: await fnDir('validate'), catalogue: await fnDir('catalogue'), prune: await fnDir('prune'), watchdog: await fnDir('watchdog') };
    const noop = await prepareNoopDir('noop', path.join(work.path, 'functions', 'noop'));
    await copyFile(LOAD_SCRIPT, path.join(dirs.validate.dir, 'load-clients.mjs'));

    // Real segments: one for the warm-up round and one per timed round.
    const wal = await generateWal({ count: options.rounds, scale: 10, dir: path.join(work.path, 'wal'), log }, cleanups);
    await wal.cluster.destroy();
    const segments = [wal.warmup, ...wal.segments].map((s) => path.basename(s));

    // The stack sends its finalize events to a receiver that keeps them; no function sees them live.
    const capture = await startEventCapture();
    cleanups.add('the event receiver', () => capture.close());
    const stack = await startLocalStack({ prefix: PREFIX, events: [{ kind: 'cloudevent', url: capture.url, types: ['finalized'] }] });
    cleanups.add('the local GCS stack', () => stack.close());
    const pushEnv = { ...(await postgresEnv()), ...stack.env, GCWAL_COMPRESSION: 'lzo' };
    log(`functions: gcwal wal-push of ${segments.length} segments (lzo) to ${stack.env.GCWAL_REPO}`);
    await createRepoForSegment(stack.env.GCWAL_REPO, wal.warmup, stack.env);
    for (const s of [wal.warmup, ...wal.segments]) await runOk(agent.command, ['wal-push', s], { env: pushEnv });
    const objectName = (segment: string) => `${PREFIX}/${walObjectKey(segment)}`;
    const storageEvents = await capture.waitFor(segments.map(objectName), 30_000);
    stack.emulator.setEvents([]);
    await capture.close();

    // The functions' side, as local/pipeline.ts builds it.
    const identity = `gcwal-functions@${stack.projectId}.iam.gserviceaccount.com`;
    stack.authority.grant(identity, 'roles/storage.objectAdmin', stack.bucket);
    const metadata = await startMetadataServer({ authority: stack.authority, identity, projectId: stack.projectId });
    cleanups.add("the functions' metadata server", () => metadata.close());
    log('functions: starting the pub/sub emulator');
    const pubsub = await startPubSubEmulator({ projectId: stack.projectId });
    cleanups.add('the pub/sub emulator', () => pubsub.close());
    for (const topic of Object.values(PIPELINE_TOPICS)) await pubsub.createTopic(topic);
    const subscriptions = {
      events: await pubsub.createPullSubscription(SUBSCRIPTIONS.events, PIPELINE_TOPICS.events),
      alerts: await pubsub.createPullSubscription(SUBSCRIPTIONS.alerts, PIPELINE_TOPICS.alerts),
    };
    const env: Record<string, string> = {
      GCWAL_REPO: stack.env.GCWAL_REPO,
      GOOGLE_CLOUD_PROJECT: stack.projectId,
      GCWAL_EVENTS_TOPIC: PIPELINE_TOPICS.events,
      GCWAL_ALERTS_TOPIC: PIPELINE_TOPICS.alerts,
      GCWAL_GCS_ENDPOINT: stack.emulator.url,
      STORAGE_EMULATOR_HOST: stack.emulator.url,
      PUBSUB_EMULATOR_HOST: pubsub.host,
      ...pipelineSettings({}),
      GCE_METADATA_HOST: metadata.host,
    };

    const row = (name: string): Row => ({ name, runs: [], coldValidationMs: [], warmValidationMs: [], problems: [] });
    const storageEvent = (segment: string) => storageEvents.get(objectName(segment))!;
    const tick = (target: 'prune' | 'watchdog') => () => schedulerEvent(stack.projectId, PIPELINE_TOPICS[target], target);
    const subjects: Subject[] = [
      // catalogue before validate: whichever of the two handles a new object first
      // writes its arrival, so this order gives each a real catalogue write.
      {
        row: row("catalogue (the segment's finalize event)"),
        fn: dirs.catalogue,
        event: storageEvent,
        check: (segment, _events, r) => checkCatalogued(stack, segment, r),
      },
      {
        row: row('validate (the same event: 16 MiB lzo segment)'),
        fn: dirs.validate,
        event: storageEvent,
        check: async (segment, events, r, timed) => checkValidated(walObjectKey(segment), events, r, timed),
      },
      {
        row: row('prune (scheduler tick)'),
        fn: dirs.prune,
        event: tick('prune'),
        second: tick('prune'),
        check: async (_s, events, r) => checkPruned(events, r),
      },
      { row: row('watchdog (scheduler tick)'), fn: dirs.watchdog, event: tick('watchdog'), second: tick('watchdog'), check: async () => {} },
      { row: row('reference: functions-framework + an empty function'), fn: noop, event: storageEvent, check: async () => {} },
    ];
    const alerts: AlertMessage[] = [];
    const loads: Loads = { storage: [], pubsub: [], pubsubAfterStorage: [] };
    for (let round = 0; round <= options.rounds; round++) {
      const timed = round > 0;
      const segment = segments[round];
      log(`functions: ${timed ? `round ${round}/${options.rounds}` : 'warm-up round'}, segment ${segment}`);
      for (const subject of subjects) {
        const first = subject.event(segment);
        const run = await measureColdStart(subject.fn, env, first, subject.second?.(segment) ?? first, cleanups);
        const events = await pullAll<PipelineEventMessage>(pubsub.host, subscriptions.events);
        alerts.push(...(await pullAll<AlertMessage>(pubsub.host, subscriptions.alerts)));
        await subject.check(segment, events, subject.row, timed);
        const errors = run.logs.split('\n').filter((l) => /"severity":"(ERROR|CRITICAL)"/.test(l));
        if (errors.length > 0) subject.row.problems.push(`${errors.length} error lines, e.g. ${errors[0].slice(0, 200)}`);
        if (timed) subject.row.runs.push(run);
      }
      if (timed) {
        loads.storage.push((await loadTimes(dirs.validate.dir, 'storage')).storage!);
        loads.pubsub.push((await loadTimes(dirs.validate.dir, 'pubsub')).pubsub!);
        loads.pubsubAfterStorage.push((await loadTimes(dirs.validate.dir, 'both')).pubsub!);
      }
    }
    return formatReport(
      subjects.map((s) => s.row),
      loads,
      alerts,
      wal.description,
      options.rounds,
      loadAtStart,
    );
  });
}

/** Run load-clients.mjs in `dir` with an empty environment; its load times in ms. */
async function loadTimes(dir: string, which: 'storage' | 'pubsub' | 'both'): Promise<{ storage?: number; pubsub?: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, 'load-clients.mjs'), which], { cwd: dir, env: {} });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { storage?: number; pubsub?: number };
}

/** The catalogue (read as admin) must name the segment. */
async function checkCatalogued(stack: LocalStack, segment: string, row: Row): Promise<void> {
  const res = await fetch(`${stack.emulator.url}/storage/v1/b/${stack.bucket}/o/${encodeURIComponent(`${PREFIX}/${CATALOGUE_KEY}`)}?alt=media`, {
    headers: { Authorization: `Bearer ${stack.adminToken()}` },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok || !text.includes(segment)) row.problems.push(`${segment} not in the catalogue (${res.status})`);
}

/** Two `validated` outcomes for `key` (first event, redelivery), both ok; their durationMs in publishing order. */
function checkValidated(key: string, events: readonly PipelineEventMessage[], row: Row, timed: boolean): void {
  const outcomes = events
    .filter((e): e is Extract<PipelineEventMessage, { kind: 'validated' }> => e.kind === 'validated' && e.key === key)
    .sort((a, b) => a.time.localeCompare(b.time));
  if (outcomes.length !== 2) row.problems.push(`${outcomes.length} validated messages for ${key}, not 2`);
  for (const o of outcomes) if (!o.ok) row.problems.push(`${key}: ${o.problem}`);
  if (timed && outcomes.length === 2) {
    row.coldValidationMs.push(outcomes[0].durationMs ?? Number.NaN);
    row.warmValidationMs.push(outcomes[1].durationMs ?? Number.NaN);
  }
}

/** Two `pruned` reports that deleted nothing (every later round needs the segments). */
function checkPruned(events: readonly PipelineEventMessage[], row: Row): void {
  const reports = events.filter((e): e is Extract<PipelineEventMessage, { kind: 'pruned' }> => e.kind === 'pruned');
  if (reports.length !== 2) row.problems.push(`${reports.length} pruned reports, not 2`);
  const deleted = reports.reduce((n, r) => n + r.deleted.length, 0);
  if (deleted > 0) row.problems.push(`prune deleted ${deleted} objects`);
}

function formatReport(
  rows: readonly Row[],
  loads: Loads,
  alerts: readonly AlertMessage[],
  walDescription: string,
  rounds: number,
  loadAtStart: readonly number[],
): string {
  const loadavg = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const range = (values: number[]) => `${fixed(Math.min(...values))}–${fixed(Math.max(...values))}`;
  const table = formatTable(
    [
      'function (first event)',
      'runs',
      'spawn → listening ms',
      'spawn → first event handled ms',
      'min–max ms',
      'first event, POST → 2xx ms',
      'same event again, warm ms',
      'peak RSS MiB',
      'max MiB',
      'result',
    ],
    rows.map((r) => {
      const pick = (f: (c: ColdStart) => number) => r.runs.map(f);
      return [
        r.name,
        String(r.runs.length),
        fixed(median(pick((c) => c.listeningMs))),
        fixed(median(pick((c) => c.firstHandledMs))),
        range(pick((c) => c.firstHandledMs)),
        fixed(median(pick((c) => c.firstHandledMs - c.listeningMs))),
        fixed(median(pick((c) => c.warmMs))),
        fixed(median(pick((c) => c.peakRssKiB)) / 1024),
        fixed(Math.max(...pick((c) => c.peakRssKiB)) / 1024),
        r.problems.length === 0 ? 'ok' : `PROBLEMS: ${[...new Set(r.problems)].join('; ')}`,
      ];
    }),
  );
  const validate = rows.find((r) => r.name.startsWith('validate'))!;
  const worst = Math.max(...rows.filter((r) => !r.name.startsWith('reference')).flatMap((r) => r.runs.map((c) => c.peakRssKiB)));
  const cold = median(validate.coldValidationMs);
  const kinds = [...new Set(alerts.map((a) => `${a.kind} (${a.status})`))];
  return [
    `## functions: cold start (${os.cpus().length} CPUs, load average ${loadavg(loadAtStart)} at the start, ${loadavg(os.loadavg())} at the end, Node ${process.version})`,
    '',
    `Each row: a fresh functions-framework process per run serving the bundle dist/functions/<name>/index.mjs from a directory laid out as deployed; medians over ${rounds} rounds (after one untimed warm-up round), one new segment per round; peak RSS is the process's VmHWM after both events.`,
    `WAL: ${walDescription}; each segment pushed with gcwal wal-push (lzo) to the local GCS stack, whose finalize event is what validate and catalogue receive.`,
    '',
    table,
    '',
    formatTable(
      ['validate: time inside the function (durationMs of its published outcome)', 'median ms', 'min–max ms'],
      [
        ['first event, cold process (read gcwal.json, stream, decode and check the segment)', fixed(cold), range(validate.coldValidationMs)],
        ['same event again, warm process', fixed(median(validate.warmValidationMs)), range(validate.warmValidationMs)],
      ],
    ),
    '',
    formatTable(
      ["client library load, fresh node process in the validate function's directory", 'median ms', 'min–max ms'],
      [
        ['@google-cloud/storage + google-auth-library (require, as core/storage/gcs/library.ts)', fixed(median(loads.storage)), range(loads.storage)],
        ['@google-cloud/pubsub (import(), as functions/lib/publisher.ts)', fixed(median(loads.pubsub)), range(loads.pubsub)],
        ['… @google-cloud/pubsub after the storage client in the same process', fixed(median(loads.pubsubAfterStorage)), range(loads.pubsubAfterStorage)],
      ],
    ),
    '',
    `Targets: a 16 MiB segment validated in under ${SEGMENT_TARGET_MS} ms: inside a cold validate ${fixed(cold)} ms → ${cold < SEGMENT_TARGET_MS ? 'met' : 'NOT met'} ` +
      `(spawn → event handled ${fixed(median(validate.runs.map((c) => c.firstHandledMs)))} ms); ` +
      `peak RSS under 256 MB (${fixed(RSS_TARGET_BYTES / 1024 / 1024)} MiB): largest ${fixed(worst / 1024)} MiB → ${worst * 1024 < RSS_TARGET_BYTES ? 'met' : 'NOT met'}.`,
    `Alerts the functions published during the run: ${kinds.length === 0 ? 'none' : kinds.join(', ')}.`,
  ].join('\n');
}
