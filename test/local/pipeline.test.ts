/**
 * The pipeline on the local stack (local/pipeline.ts): what the functions
 * run with, that the scheduler topics reach prune and watchdog through push
 * subscriptions and their reports reach a real subscriber, and that close()
 * leaves no process behind. The end-to-end behaviour on real PostgreSQL is in
 * test/functions/pipeline-e2e.test.ts.
 */
import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { UsageError } from '../../core/errors.ts';
import { FUNCTIONS_CONFIG_TABLE, readFunctionsConfig } from '../../functions/config.ts';
import { PIPELINE_FUNCTIONS, pipelineSettings } from '../../local/pipeline.ts';
import { startLocalStack, type LocalStack } from '../../local/stack.ts';

let stack: LocalStack;
let startMs = 0;

test.before(async () => {
  const started = Date.now();
  stack = await startLocalStack({
    bucket: 'pipe-wiring',
    projectId: 'wiring-proj',
    prefix: 'db/one',
    pipeline: { retainDays: 3, pruneDryRun: true, env: { GCWAL_STALL_MINUTES: '2' }, toolEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  });
  startMs = Date.now() - started;
});

test.after.always(() => stack?.close());

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Pids of live (not zombie) processes whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (cmdline.includes(needle) && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') found.push(Number(entry));
  }
  return found;
}

test('the stack starts the pipeline and adds PUBSUB_EMULATOR_HOST to the agent env', (t) => {
  t.log(`stack with pipeline ready in ${startMs} ms`);
  const pipeline = stack.pipeline!;
  t.truthy(pipeline);
  t.is(stack.env.PUBSUB_EMULATOR_HOST, pipeline.pubsubHost);
  t.is(stack.env.GOOGLE_CLOUD_PROJECT, 'wiring-proj');
  t.regex(pipeline.pubsubHost, /^127\.0\.0\.1:\d+$/);
  t.deepEqual(pipeline.subscriptions, {
    events: 'projects/wiring-proj/subscriptions/gcwal-events-local',
    alerts: 'projects/wiring-proj/subscriptions/gcwal-alerts-local',
  });
});

test('each function sees only its configuration, which the functions accept, and its own metadata server', (t) => {
  const env = stack.pipeline!.functionEnv;
  const allowed = new Set([...FUNCTIONS_CONFIG_TABLE.map((e) => e.env), 'GCE_METADATA_HOST']);
  t.deepEqual(
    Object.keys(env).filter((k) => !allowed.has(k)),
    [],
    'nothing outside the config table but the metadata host',
  );
  for (const leak of ['PATH', 'HOME', 'GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_CONFIG']) t.false(leak in env, leak);
  t.not(env.GCE_METADATA_HOST, stack.env.GCE_METADATA_HOST, "the functions do not borrow the agent's identity");
  const config = readFunctionsConfig(env);
  t.like(config, {
    repo: 'gs://pipe-wiring/db/one',
    projectId: 'wiring-proj',
    eventsTopic: 'gcwal-events',
    alertsTopic: 'gcwal-alerts',
    pruneDryRun: true,
    pubsubEmulatorHost: stack.pipeline!.pubsubHost,
    gcsEndpoint: stack.emulator.url,
  });
  t.deepEqual(config.retention, { retainFull: undefined, retainDays: 3, walRetainDays: undefined });
  t.is(config.thresholds.stallSeconds, 120);
});

test("the functions' identity may replace and delete objects in the bucket, and nowhere else", async (t) => {
  const { identity, metadata } = stack.pipeline!;
  t.is(identity, 'gcwal-functions@wiring-proj.iam.gserviceaccount.com');
  t.deepEqual(stack.authority.rolesOf(identity, 'pipe-wiring'), ['roles/storage.objectAdmin']);
  t.deepEqual(stack.authority.rolesOf(identity, 'another-bucket'), []);
  const res = await fetch(`${metadata.url}/computeMetadata/v1/instance/service-accounts/default/token`, { headers: { 'Metadata-Flavor': 'Google' } });
  t.is(res.status, 200);
  const { access_token: token } = (await res.json()) as { access_token: string };
  t.is(stack.authority.identify(token), identity);
});

test('a prune tick reaches the prune function through its push subscription, and its report a real subscriber', async (t) => {
  const pipeline = stack.pipeline!;
  await pipeline.tick('prune');
  const report = await pipeline.nextEvent((e) => e.kind === 'pruned', 30_000);
  t.like(report, { kind: 'pruned', repository: 'gs://pipe-wiring/db/one', dryRun: true, deleted: [], kept: 0 });
  // The function logs after it publishes, and its stdout reaches us through a pipe: wait for the line.
  const deadline = Date.now() + 10_000;
  while (!/"message":"prune would delete 0 objects/.test(pipeline.logs().prune) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.regex(pipeline.logs().prune, /"message":"prune would delete 0 objects/);
});

test('a watchdog tick runs the watchdog', async (t) => {
  const pipeline = stack.pipeline!;
  await pipeline.tick('watchdog');
  const deadline = Date.now() + 30_000;
  while (!/watchdog: 0 open alerts/.test(pipeline.logs().watchdog) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.regex(pipeline.logs().watchdog, /"message":"watchdog: 0 open alerts"/);
});

for (const [what, env, pattern] of [
  ['a name the functions do not know', { GCWAL_STALL_MINUTS: '1' }, /^GCWAL_STALL_MINUTS is not a setting of the functions$/],
  ['a name the stack sets itself', { GCWAL_REPO: 'gs://elsewhere' }, /^GCWAL_REPO is set by the local stack$/],
  ['a value the functions would refuse', { GCWAL_STALL_MINUTES: '0' }, /GCWAL_STALL_MINUTES/],
] as const) {
  test(`pipeline env with ${what} is refused before anything starts`, async (t) => {
    t.throws(() => pipelineSettings({ env }), { instanceOf: UsageError, message: pattern });
    await t.throwsAsync(startLocalStack({ pipeline: { env } }), { instanceOf: UsageError, message: pattern });
  });
}

for (const [what, options, pattern] of [
  ['a missing functions bundle', { source: '/nonexistent/index.mjs' }, /^the functions bundle \/nonexistent\/index\.mjs does not exist$/],
  ['no gcloud on PATH', { toolEnv: { PATH: '/nonexistent' } }, /^cannot run gcloud for the pub\/sub emulator: it is not on PATH$/],
] as const) {
  test(`${what} is a usage error that says how to do without the pipeline`, async (t) => {
    const err = await t.throwsAsync(startLocalStack({ bucket: 'pipe-refused', pipeline: options }), { instanceOf: UsageError, message: pattern });
    t.regex(err!.hint, /gcwal local --no-pipeline/);
  });
}

test('without a retention policy the pipeline keeps the newest 7 full backups, so the functions accept their config', (t) => {
  t.deepEqual(pipelineSettings({}), { GCWAL_RETAIN_FULL: '7' });
  t.deepEqual(pipelineSettings({ retainDays: 10, walRetainDays: 20 }), { GCWAL_RETAIN_DAYS: '10', GCWAL_WAL_RETAIN_DAYS: '20' });
});

test('close stops the emulator, the four functions and both metadata servers, leaving no process', async (t) => {
  const own = await startLocalStack({ pipeline: {}, bucket: 'pipe-close' });
  const pipeline = own.pipeline!;
  const pubsubPort = Number(pipeline.pubsubHost.split(':')[1]);
  const functionPorts = PIPELINE_FUNCTIONS.map((name) => Number(new URL(pipeline.functions[name].url).port));
  t.not((await processesMentioning(`--host-port=127.0.0.1:${pubsubPort}`)).length, 0, 'the emulator runs');
  pipeline.alerts(); // start a subscriber, so close has a client to release too
  await Promise.all([own.close(), own.close()]);
  for (const port of [pubsubPort, ...functionPorts, Number(pipeline.metadata.host.split(':')[1]), Number(own.metadata.host.split(':')[1])])
    t.true(await refused(port), `port ${port} closed`);
  t.deepEqual(await processesMentioning(`--host-port=127.0.0.1:${pubsubPort}`), []);
  for (const port of functionPorts) t.deepEqual(await processesMentioning(`--port=${port}`), []);
});
