/**
 * terraform/ against the code it deploys: the event types the triggers
 * deliver are the ones core turns into catalogue events, the object layout
 * is core's, the functions' environment is exactly their configuration table
 * (with the same defaults), and the buckets are set up the way the pipeline
 * depends on (no lifecycle deletions, no public access).
 */
import test from 'ava';
import { catalogueEventFromObjectResource } from '../../core/catalogue/apply.ts';
import { BACKUP_PREFIX, CATALOGUE_KEY, REPOSITORY_KEY, WAL_PREFIX, backupPartKey, walObjectKey } from '../../core/layout.ts';
import { FUNCTIONS_CONFIG_TABLE } from '../../functions/config.ts';
import { block, loadAllModules, moduleAt, resolveLocal, type Body } from './hcl.ts';

const modules = await loadAllModules();
const root = moduleAt(modules, 'terraform');
const pipeline = moduleAt(modules, 'terraform/modules/pipeline');
const bucket = moduleAt(modules, 'terraform/modules/bucket');

const FINALIZED = 'google.cloud.storage.object.v1.finalized';
const DELETED = 'google.cloud.storage.object.v1.deleted';
const PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';

/** local.functions, with each event type resolved to its literal. */
function functions(): Record<string, Body & { entry_point: string; event_type: string }> {
  const table = pipeline.locals.get('functions') as Record<string, Body>;
  return Object.fromEntries(
    Object.entries(table).map(([key, row]) => [
      key,
      { ...row, entry_point: row.entry_point as string, event_type: resolveLocal(pipeline, row.event_type) as string },
    ]),
  );
}

const functionResource = () => pipeline.resources.get('google_cloudfunctions2_function.function')!;

test('four functions are deployed, one per entry point, each from its own bundle', (t) => {
  const table = functions();
  t.deepEqual(Object.keys(table).sort(), ['catalogue', 'prune', 'validate', 'watchdog']);
  for (const [key, row] of Object.entries(table)) t.is(row.entry_point, key, `${key}: entry point`);
  const fn = functionResource();
  t.is(fn.for_each, '${local.functions}');
  t.is(block(fn, 'build_config')?.entry_point, '${each.value.entry_point}');
  t.is(block(fn, 'build_config')?.runtime, 'nodejs22');
  const source = pipeline.resources.get('google_storage_bucket_object.source')!;
  t.is(source.for_each, '${local.functions}');
  t.is(source.source, '${var.source_dir}/${each.key}.zip');
  t.is(block(fn, 'build_config', 'source', 'storage_source')?.object, '${google_storage_bucket_object.source[each.key].name}');
});

test('validate fires on finalized objects, catalogue on finalized and deleted ones, prune and watchdog on their schedule topics', (t) => {
  const table = functions();
  t.is(table.validate.event_type, FINALIZED);
  t.is(table.catalogue.event_type, FINALIZED);
  t.is(table.prune.event_type, PUBLISHED);
  t.is(table.watchdog.event_type, PUBLISHED);

  const deleted = pipeline.resources.get('google_eventarc_trigger.catalogue_deleted')!;
  const criteria = Object.fromEntries((deleted.matching_criteria as Body[]).map((c) => [c.attribute, resolveLocal(pipeline, c.value)]));
  t.deepEqual(criteria, { type: DELETED, bucket: '${var.bucket_name}' });
  t.is(block(deleted, 'destination', 'cloud_run_service')?.service, '${google_cloudfunctions2_function.function["catalogue"].name}');
});

test('the storage triggers deliver the event types core turns into catalogue events', (t) => {
  const prefix = 'prod/db-1';
  const resource = (key: string) => ({
    name: `${prefix}/${key}`,
    generation: '1712345678901234',
    size: '4096',
    timeCreated: '2026-01-01T00:00:00Z',
    timeDeleted: '2026-01-02T00:00:00Z',
  });
  const segment = walObjectKey('000000010000000000000003');
  const part = backupPartKey('base_000000010000000000000002', 0);
  for (const [type, kind] of [
    [FINALIZED, 'finalized'],
    [DELETED, 'deleted'],
  ] as const) {
    t.is(catalogueEventFromObjectResource(type, resource(segment), prefix)?.type, kind, `${type} of a WAL segment`);
    t.is(catalogueEventFromObjectResource(type, resource(part), prefix)?.type, kind, `${type} of a backup part`);
    // Eventarc cannot filter by prefix: the function sees objects of other prefixes and must ignore them
    t.is(catalogueEventFromObjectResource(type, { ...resource(segment), name: `other/${segment}` }, prefix), undefined);
  }
});

test('the catalogue object fires no catalogue event, so keeping it in the archive bucket cannot loop', (t) => {
  const resource = { name: `db/${CATALOGUE_KEY}`, generation: '7', size: '100', timeCreated: '2026-01-01T00:00:00Z' };
  t.is(catalogueEventFromObjectResource(FINALIZED, resource, 'db'), undefined);
});

test("the storage triggers filter on the bucket alone, in the bucket's location", (t) => {
  const trigger = block(functionResource(), 'event_trigger')!;
  const filters = (trigger.dynamic as Record<string, Body[]>).event_filters[0];
  t.deepEqual(filters.content, [{ attribute: 'bucket', value: '${event_filters.value}' }]);
  t.is(filters.for_each, '${each.value.event_type == local.pubsub_event ? [] : [var.bucket_name]}');
  t.is(trigger.trigger_region, '${each.value.event_type == local.pubsub_event ? var.region : var.trigger_location}');
  t.is(root.locals.get('trigger_location'), '${lower(local.bucket_location)}');
  const deleted = pipeline.resources.get('google_eventarc_trigger.catalogue_deleted')!;
  t.is(deleted.location, '${var.trigger_location}');
});

test('prune and watchdog are fed by Cloud Scheduler through their own topics', (t) => {
  const topics = pipeline.resources.get('google_pubsub_topic.schedule')!;
  t.is(topics.for_each, '${toset(["prune", "watchdog"])}');
  const jobs = pipeline.resources.get('google_cloud_scheduler_job.schedule')!;
  t.deepEqual(Object.keys(jobs.for_each as Body).sort(), ['prune', 'watchdog']);
  t.is(block(jobs, 'pubsub_target')?.topic_name, '${google_pubsub_topic.schedule[each.key].id}');
  t.is(block(functionResource(), 'event_trigger')?.pubsub_topic, '${lookup(local.schedule_topic_ids, each.key, null)}');
  t.is(pipeline.locals.get('schedule_topic_ids'), '${{ for name, topic in google_pubsub_topic.schedule : name => topic.id }}');
});

test('the functions get exactly the variables of their configuration table, minus the emulator ones', (t) => {
  const EMULATOR_ONLY = ['GCWAL_GCS_ENDPOINT', 'STORAGE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST'];
  const table = FUNCTIONS_CONFIG_TABLE.map((row) => row.env)
    .filter((env) => !EMULATOR_ONLY.includes(env))
    .sort();
  const env = pipeline.locals.get('function_env_all') as Body;
  t.deepEqual(Object.keys(env).sort(), table);
  t.is(pipeline.locals.get('function_env'), '${{ for name, value in local.function_env_all : name => value if value != null }}');
  t.is(block(functionResource(), 'service_config')?.environment_variables, '${local.function_env}');
});

test("the variables behind the functions' settings default to the configuration table's defaults", (t) => {
  const rootDefault = (name: string) => String(root.variables.get(name)?.default);
  const tableDefault = (env: string) => String(FUNCTIONS_CONFIG_TABLE.find((row) => row.env === env)?.default);
  const pairs: [string, string][] = [
    ['GCWAL_STALL_MINUTES', 'stall_minutes'],
    ['GCWAL_BACKUP_MAX_AGE_HOURS', 'backup_max_age_hours'],
    ['GCWAL_UNVALIDATED_MINUTES', 'unvalidated_minutes'],
    ['GCWAL_GAP_GRACE_MINUTES', 'gap_grace_minutes'],
    ['GCWAL_PRUNE_DRY_RUN', 'prune_dry_run'],
  ];
  for (const [env, variable] of pairs) t.is(rootDefault(variable), tableDefault(env), `${variable} vs ${env}`);
  // topics: "${var.name_prefix}-events" with the default prefix is the table's default name
  const prefix = String(root.variables.get('name_prefix')?.default);
  const topicName = (resource: string) => String(pipeline.resources.get(resource)?.name).replace('${var.name_prefix}', prefix);
  t.is(topicName('google_pubsub_topic.events'), tableDefault('GCWAL_EVENTS_TOPIC'));
  t.is(topicName('google_pubsub_topic.alerts'), tableDefault('GCWAL_ALERTS_TOPIC'));
});

test("the object layout in the outputs is core's", (t) => {
  t.deepEqual(root.locals.get('layout'), { repository: REPOSITORY_KEY, wal: WAL_PREFIX, backups: BACKUP_PREFIX, catalogue: CATALOGUE_KEY });
});

test('the buckets have uniform access, public access prevention and no lifecycle rule', (t) => {
  const buckets = [...bucket.resources.entries(), ...pipeline.resources.entries()].filter(([address]) => address.startsWith('google_storage_bucket.'));
  t.deepEqual(buckets.map(([address]) => address).sort(), [
    'google_storage_bucket.archive',
    'google_storage_bucket.catalogue',
    'google_storage_bucket.sources',
  ]);
  for (const [address, body] of buckets) {
    t.is(body.uniform_bucket_level_access, true, address);
    t.is(body.public_access_prevention, 'enforced', address);
    // an age-based deletion cannot know what a restore still needs; only prune deletes
    t.false('lifecycle_rule' in body, `${address} has a lifecycle rule`);
    t.false('lifecycle_rule' in ((body.dynamic as Body | undefined) ?? {}), `${address} has a lifecycle rule`);
  }
  const archive = bucket.resources.get('google_storage_bucket.archive')!;
  t.deepEqual(block(archive, 'versioning'), { enabled: false });
  t.is(block(archive, 'soft_delete_policy')?.retention_duration_seconds, '${var.soft_delete_retention_days * local.day_seconds}');
  t.truthy((archive.dynamic as Body).retention_policy, 'optional retention policy');
  t.truthy((archive.dynamic as Body).encryption, 'optional CMEK');
  t.deepEqual(block(bucket.resources.get('google_storage_bucket.catalogue'), 'soft_delete_policy'), { retention_duration_seconds: 0 });
});

test('the repository URL the functions watch is the one the agent is told to archive into', (t) => {
  const call = root.modules.get('pipeline')!;
  t.is(call.repository_url, '${local.repository_url}');
  t.is(call.catalogue_repository_url, '${local.catalogue_repository_url}');
  t.is((root.locals.get('agent_env_all') as Body).GCWAL_REPO, '${local.repository_url}');
  t.is((root.locals.get('agent_env_all') as Body).GCWAL_CATALOGUE_REPO, '${local.catalogue_repository_url}');
  t.is(root.locals.get('repository_url'), 'gs://${var.bucket_name}${local.repository_suffix}');
  t.is(
    root.locals.get('catalogue_repository_url'),
    '${var.separate_catalogue_bucket ? "gs://${local.catalogue_bucket_name}${local.repository_suffix}" : null}',
  );
});
