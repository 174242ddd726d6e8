/**
 * terraform/modules/pipeline/metrics.tf against the code that logs the
 * figures: the log-based metrics read the entry the watchdog writes (its
 * message, its function, fields that exist in PipelineMetrics), every figure
 * the dashboard needs has a metric, every alert kind has one, and every
 * alert policy watches a metric defined here with the functions' thresholds.
 */
import test from 'ava';
import { metricAlertField, METRIC_ALERT_KINDS, pipelineMetrics } from '../../core/catalogue/metrics.ts';
import { emptyCatalogue } from '../../core/catalogue/types.ts';
import { METRICS_MESSAGE } from '../../functions/watchdog.ts';
import { block, loadAllModules, moduleAt, type Body } from './hcl.ts';

const pipeline = moduleAt(await loadAllModules(), 'terraform/modules/pipeline');
const figures = pipeline.locals.get('metric_figures') as Record<string, { field: string; unit: string; buckets: string }>;
const policies = pipeline.locals.get('metric_policies') as Record<string, { metric: string; threshold: string | number; duration: string }>;
const logged = pipelineMetrics(emptyCatalogue(new Date()), new Date()) as unknown as Record<string, unknown>;
const resource = (name: string) => pipeline.resources.get(name)!;

test('the metrics read the entry the watchdog logs, from the watchdog function alone', (t) => {
  const filter = pipeline.locals.get('metrics_filter') as string;
  t.true(filter.includes(`jsonPayload.message = "${METRICS_MESSAGE}"`), filter);
  t.true(filter.includes('resource.labels.service_name = "${google_cloudfunctions2_function.function["watchdog"].name}"'), filter);
  for (const name of ['google_logging_metric.figure', 'google_logging_metric.open_alerts_by_kind', 'google_logging_metric.runs']) {
    t.true((resource(name).filter as string).startsWith('${local.metrics_filter}'), name);
  }
});

test('a metric for each figure of the issue: archive lag, recovery window start and end, last valid backup age, pending objects, open alerts', (t) => {
  const fields = Object.values(figures)
    .map((f) => f.field)
    .sort();
  t.deepEqual(fields, ['archiveLagSeconds', 'lastValidBackupAgeSeconds', 'openAlertsTotal', 'pendingObjects', 'windowEndAgeSeconds', 'windowStartAgeSeconds']);
  for (const f of Object.values(figures)) {
    t.true(f.field in logged, `${f.field} is a field of the logged metrics`);
    t.is(f.buckets, f.unit === 's' ? 'seconds' : 'count');
  }
  const fig = resource('google_logging_metric.figure');
  t.is(fig.for_each, '${local.metric_figures}');
  t.is(fig.value_extractor, 'EXTRACT(jsonPayload.metrics.${each.value.field})');
  // A figure that does not exist yet is logged as null: the filter skips it instead of counting a 0.
  t.is(fig.filter, '${local.metrics_filter} AND jsonPayload.metrics.${each.value.field} >= 0');
  t.is(block(fig, 'metric_descriptor')?.value_type, 'DISTRIBUTION');
  t.truthy(block(fig, 'bucket_options', 'exponential_buckets'), 'a distribution needs buckets');
});

test('one metric per alert kind, reading the field the watchdog logs for it', (t) => {
  t.deepEqual(pipeline.locals.get('metric_alert_kinds'), METRIC_ALERT_KINDS.map(metricAlertField));
  t.deepEqual(Object.keys(logged.openAlerts as object).sort(), [...(pipeline.locals.get('metric_alert_kinds') as string[])].sort());
  const byKind = resource('google_logging_metric.open_alerts_by_kind');
  t.is(byKind.for_each, '${toset(local.metric_alert_kinds)}');
  t.is(byKind.value_extractor, 'EXTRACT(jsonPayload.metrics.openAlerts.${each.key})');
});

test("every alert policy watches a log-based metric of this module, the lag and backup age at the functions' thresholds", (t) => {
  const policy = resource('google_monitoring_alert_policy.metric');
  t.is(policy.for_each, '${local.metric_policies}');
  const condition = block(policy, 'conditions', 'condition_threshold') as Body;
  t.is(condition.filter, 'resource.type = "cloud_run_revision" AND metric.type = "logging.googleapis.com/user/${each.value.metric}"');
  t.is(block(condition, 'aggregations')?.per_series_aligner, 'ALIGN_PERCENTILE_99', 'a distribution is aligned by percentile');
  for (const [name, p] of Object.entries(policies)) {
    t.regex(p.metric, /^\$\{google_logging_metric\.(figure|open_alerts_by_kind)\["[a-z_]+"\]\.name\}$/, name);
    const key = /\["([a-z_]+)"\]/.exec(p.metric)![1];
    t.true(key in figures || METRIC_ALERT_KINDS.map(metricAlertField).includes(key), `${name}: ${key} is a metric of this module`);
    t.regex(p.duration, /^(\d+s|\$\{.*\}s)$/, name);
  }
  t.is(policies.archive_lag.threshold, '${var.thresholds.stall_minutes * 60}');
  t.is(policies.last_valid_backup_age.threshold, '${var.thresholds.backup_max_age_hours * 3600}');
  t.truthy(policies.corrupt_objects && policies.wal_gaps && policies.pending_objects);
  const absent = block(resource('google_monitoring_alert_policy.metrics_absent'), 'conditions', 'condition_absent') as Body;
  t.true((absent.filter as string).includes('${google_logging_metric.runs.name}'));
});
