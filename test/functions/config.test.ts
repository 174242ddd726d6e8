/**
 * The functions' configuration: defaults, every setting read, and errors that
 * name the variable to fix; and the runtime built from it, lazily.
 */
import test from 'ava';
import { ExitCode, UsageError } from '../../core/errors.ts';
import { FUNCTIONS_CONFIG_TABLE, readFunctionsConfig } from '../../functions/config.ts';
import { createRuntime, lazyRuntime } from '../../functions/lib/runtime.ts';

const MINIMAL = { GCWAL_REPO: 'gs://archive/prod', GCWAL_RETAIN_FULL: '7' };

test('a minimal environment gets the documented defaults', (t) => {
  t.deepEqual(readFunctionsConfig(MINIMAL), {
    repo: 'gs://archive/prod',
    catalogueRepo: 'gs://archive/prod',
    projectId: undefined,
    eventsTopic: 'gcwal-events',
    alertsTopic: 'gcwal-alerts',
    retention: { retainFull: 7, retainDays: undefined, walRetainDays: undefined },
    pruneDryRun: false,
    thresholds: { stallSeconds: 30 * 60, backupMaxAgeSeconds: 36 * 3600, unvalidatedSeconds: 15 * 60, gapGraceSeconds: 5 * 60 },
    gcsEndpoint: undefined,
    pubsubEmulatorHost: undefined,
  });
});

test('every setting is read from its variable', (t) => {
  const config = readFunctionsConfig({
    GCWAL_REPO: 'gs://archive',
    GCWAL_CATALOGUE_REPO: 'gs://catalogues/prod',
    GOOGLE_CLOUD_PROJECT: 'my-project',
    GCWAL_EVENTS_TOPIC: 'events',
    GCWAL_ALERTS_TOPIC: 'alerts',
    GCWAL_RETAIN_FULL: '3',
    GCWAL_RETAIN_DAYS: '14',
    GCWAL_WAL_RETAIN_DAYS: '30',
    GCWAL_PRUNE_DRY_RUN: 'yes',
    GCWAL_STALL_MINUTES: '10',
    GCWAL_BACKUP_MAX_AGE_HOURS: '25',
    GCWAL_UNVALIDATED_MINUTES: '20',
    GCWAL_GAP_GRACE_MINUTES: '0',
    GCWAL_GCS_ENDPOINT: 'http://127.0.0.1:9023/',
    STORAGE_EMULATOR_HOST: 'http://127.0.0.1:1',
    PUBSUB_EMULATOR_HOST: '127.0.0.1:8085',
  });
  t.deepEqual(config, {
    repo: 'gs://archive',
    catalogueRepo: 'gs://catalogues/prod',
    projectId: 'my-project',
    eventsTopic: 'events',
    alertsTopic: 'alerts',
    retention: { retainFull: 3, retainDays: 14, walRetainDays: 30 },
    pruneDryRun: true,
    thresholds: { stallSeconds: 600, backupMaxAgeSeconds: 25 * 3600, unvalidatedSeconds: 1200, gapGraceSeconds: 0 },
    gcsEndpoint: 'http://127.0.0.1:9023',
    pubsubEmulatorHost: '127.0.0.1:8085',
  });
});

test('STORAGE_EMULATOR_HOST is the endpoint when GCWAL_GCS_ENDPOINT is not set', (t) => {
  t.is(readFunctionsConfig({ ...MINIMAL, STORAGE_EMULATOR_HOST: 'http://127.0.0.1:4443//' }).gcsEndpoint, 'http://127.0.0.1:4443');
});

test('retention by days alone is a policy', (t) => {
  t.deepEqual(readFunctionsConfig({ GCWAL_REPO: 'gs://a', GCWAL_RETAIN_DAYS: '7' }).retention, {
    retainFull: undefined,
    retainDays: 7,
    walRetainDays: undefined,
  });
});

const errors: { name: string; env: Record<string, string>; message: RegExp; variable: string }[] = [
  { name: 'no repository', env: { GCWAL_RETAIN_FULL: '2' }, message: /^GCWAL_REPO is not set for the functions$/, variable: 'GCWAL_REPO' },
  { name: 'an empty repository', env: { GCWAL_REPO: '', GCWAL_RETAIN_FULL: '2' }, message: /^GCWAL_REPO is empty$/, variable: 'GCWAL_REPO' },
  {
    name: 'a repository that is no gs:// URL',
    env: { GCWAL_REPO: 's3://bucket/db', GCWAL_RETAIN_FULL: '2' },
    message: /^GCWAL_REPO "s3:\/\/bucket\/db" is not a gs:\/\/ or file:\/\/ URL$/,
    variable: 'GCWAL_REPO',
  },
  {
    name: 'a catalogue repository that is no gs:// URL',
    env: { ...MINIMAL, GCWAL_CATALOGUE_REPO: 'catalogues/prod' },
    message: /^GCWAL_CATALOGUE_REPO "catalogues\/prod" is not a gs:\/\/ or file:\/\/ URL$/,
    variable: 'GCWAL_CATALOGUE_REPO',
  },
  {
    name: 'no retention policy',
    env: { GCWAL_REPO: 'gs://a' },
    message: /neither GCWAL_RETAIN_FULL nor GCWAL_RETAIN_DAYS is set/,
    variable: 'GCWAL_RETAIN_FULL',
  },
  {
    name: 'a retain-full that is not a number',
    env: { GCWAL_REPO: 'gs://a', GCWAL_RETAIN_FULL: 'seven' },
    message: /^GCWAL_RETAIN_FULL must be an integer, not "seven"$/,
    variable: 'GCWAL_RETAIN_FULL',
  },
  {
    name: 'a retain-full of zero',
    env: { GCWAL_REPO: 'gs://a', GCWAL_RETAIN_FULL: '0' },
    message: /^GCWAL_RETAIN_FULL must be at least 1, not 0$/,
    variable: 'GCWAL_RETAIN_FULL',
  },
  {
    name: 'fractional retain-days',
    env: { GCWAL_REPO: 'gs://a', GCWAL_RETAIN_DAYS: '1.5' },
    message: /^GCWAL_RETAIN_DAYS must be an integer, not "1\.5"$/,
    variable: 'GCWAL_RETAIN_DAYS',
  },
  {
    name: 'a wal window shorter than the backup window',
    env: { GCWAL_REPO: 'gs://a', GCWAL_RETAIN_DAYS: '14', GCWAL_WAL_RETAIN_DAYS: '7' },
    message: /^GCWAL_WAL_RETAIN_DAYS 7 is shorter than GCWAL_RETAIN_DAYS 14$/,
    variable: 'GCWAL_WAL_RETAIN_DAYS',
  },
  {
    name: 'a dry-run flag that is not a boolean',
    env: { ...MINIMAL, GCWAL_PRUNE_DRY_RUN: 'maybe' },
    message: /^GCWAL_PRUNE_DRY_RUN must be true or false, not "maybe"$/,
    variable: 'GCWAL_PRUNE_DRY_RUN',
  },
  {
    name: 'a stall threshold of zero',
    env: { ...MINIMAL, GCWAL_STALL_MINUTES: '0' },
    message: /^GCWAL_STALL_MINUTES must be at least 1, not 0$/,
    variable: 'GCWAL_STALL_MINUTES',
  },
  {
    name: 'a negative gap grace',
    env: { ...MINIMAL, GCWAL_GAP_GRACE_MINUTES: '-5' },
    message: /^GCWAL_GAP_GRACE_MINUTES must be at least 0, not -5$/,
    variable: 'GCWAL_GAP_GRACE_MINUTES',
  },
  {
    name: 'a backup age in days',
    env: { ...MINIMAL, GCWAL_BACKUP_MAX_AGE_HOURS: '2d' },
    message: /^GCWAL_BACKUP_MAX_AGE_HOURS must be an integer, not "2d"$/,
    variable: 'GCWAL_BACKUP_MAX_AGE_HOURS',
  },
  { name: 'an empty topic', env: { ...MINIMAL, GCWAL_ALERTS_TOPIC: '' }, message: /^GCWAL_ALERTS_TOPIC is empty$/, variable: 'GCWAL_ALERTS_TOPIC' },
];

for (const c of errors) {
  test(`${c.name} is a usage error naming ${c.variable}`, (t) => {
    const error = t.throws(() => readFunctionsConfig(c.env), { instanceOf: UsageError, message: c.message });
    t.is(error?.exitCode, ExitCode.usage);
    t.true(`${error?.message} ${error?.hint}`.includes(c.variable));
    t.notRegex(`${error?.message}\n${error?.hint}`, /\.$|\n.*\n/m);
  });
}

test('every variable in the table is one readFunctionsConfig understands, named once', (t) => {
  const names = FUNCTIONS_CONFIG_TABLE.map((e) => e.env);
  t.is(new Set(names).size, names.length);
  for (const name of names) t.regex(name, /^(GCWAL_[A-Z_]+|GOOGLE_CLOUD_PROJECT|STORAGE_EMULATOR_HOST|PUBSUB_EMULATOR_HOST)$/);
});

test('a runtime is built from the environment, and a bad one fails naming the variable', (t) => {
  const rt = createRuntime({ ...MINIMAL, GCWAL_ALERTS_TOPIC: 'my-alerts' }, { now: () => new Date(0) });
  t.is(rt.config.alertsTopic, 'my-alerts');
  t.is(rt.now().getTime(), 0);
  t.throws(() => createRuntime({ GCWAL_REPO: 'gs://a', GCWAL_RETAIN_FULL: 'many' }), { instanceOf: UsageError, message: /GCWAL_RETAIN_FULL/ });
});

test('a lazy runtime is built on the first event, not before, and then reused', (t) => {
  let built = 0;
  const get = lazyRuntime(() => {
    built++;
    return createRuntime(MINIMAL);
  });
  t.is(built, 0);
  const first = get();
  t.is(get(), first);
  t.is(built, 1);
  // A bad environment surfaces on each event, as a failed invocation, never at import.
  const bad = lazyRuntime(() => createRuntime({}));
  t.throws(() => bad(), { message: /GCWAL_REPO is not set/ });
  t.throws(() => bad(), { message: /GCWAL_REPO is not set/ });
});
