# Metrics a dashboard can use. Each watchdog run logs one structured entry,
# message "gcwal metrics", whose jsonPayload.metrics holds the pipeline's
# figures (core/catalogue/metrics.ts; `gcwal status --json` carries the same
# object). Log-based metrics extract them, and alert policies watch the ones
# that mean data at risk. docs/metrics.md shows the queries.
#
# A log-based metric with a value extractor is a distribution; the policies
# align it with ALIGN_PERCENTILE_99 over a window that holds at least one
# watchdog run, which for one entry per run is the figure itself.

locals {
  metrics_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloudfunctions2_function.function["watchdog"].name}\" AND jsonPayload.message = \"gcwal metrics\""

  # One gauge-like figure per field of the entry's `metrics` object.
  metric_figures = {
    archive_lag_seconds = {
      field       = "archiveLagSeconds"
      unit        = "s"
      buckets     = "seconds"
      description = "Seconds since the newest WAL object was archived (archive lag)."
    }
    window_start_age_seconds = {
      field       = "windowStartAgeSeconds"
      unit        = "s"
      buckets     = "seconds"
      description = "Seconds since the earliest restorable point of the newest timeline (how far back a restore can go)."
    }
    window_end_age_seconds = {
      field       = "windowEndAgeSeconds"
      unit        = "s"
      buckets     = "seconds"
      description = "Seconds since the latest restorable point of the newest timeline (data a restore would lose now)."
    }
    last_valid_backup_age_seconds = {
      field       = "lastValidBackupAgeSeconds"
      unit        = "s"
      buckets     = "seconds"
      description = "Seconds since the newest backup validated as whole finished."
    }
    pending_objects = {
      field       = "pendingObjects"
      unit        = "1"
      buckets     = "count"
      description = "WAL files, backup parts and backups waiting for validation."
    }
    open_alerts = {
      field       = "openAlertsTotal"
      unit        = "1"
      buckets     = "count"
      description = "Alerts the pipeline has open, all kinds."
    }
  }

  # The alert kinds, as fields of `metrics.openAlerts` (core/catalogue/metrics.ts METRIC_ALERT_KINDS).
  metric_alert_kinds = [
    "corrupt_object",
    "wal_gap",
    "timeline_without_history",
    "archiving_stalled",
    "backup_too_old",
    "no_valid_backup",
    "objects_unvalidated",
    "malformed_event",
  ]

  # Buckets for seconds: 1 s to about 4 months, doubling; for counts: 0 to about a million.
  metric_buckets = {
    seconds = { scale = 1, growth_factor = 2, num_finite_buckets = 24 }
    count   = { scale = 1, growth_factor = 2, num_finite_buckets = 20 }
  }
}

resource "google_logging_metric" "figure" {
  for_each = local.metric_figures

  project          = var.project_id
  name             = "gcwal/${var.name_prefix}/${each.key}"
  description      = each.value.description
  filter           = "${local.metrics_filter} AND jsonPayload.metrics.${each.value.field} >= 0"
  value_extractor  = "EXTRACT(jsonPayload.metrics.${each.value.field})"
  label_extractors = { repository = "EXTRACT(jsonPayload.repository)" }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "gcwal ${replace(each.key, "_", " ")} (${var.name_prefix})"
    labels {
      key         = "repository"
      value_type  = "STRING"
      description = "the repository URL the pipeline watches"
    }
  }

  bucket_options {
    exponential_buckets {
      scale              = local.metric_buckets[each.value.buckets].scale
      growth_factor      = local.metric_buckets[each.value.buckets].growth_factor
      num_finite_buckets = local.metric_buckets[each.value.buckets].num_finite_buckets
    }
  }
}

# Counts the entries themselves: the watchdog ran and could read the catalogue.
resource "google_logging_metric" "runs" {
  project     = var.project_id
  name        = "gcwal/${var.name_prefix}/metrics_entries"
  description = "gcwal metrics entries logged by the watchdog (one per run)."
  filter      = local.metrics_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "gcwal watchdog runs (${var.name_prefix})"
  }
}

resource "google_logging_metric" "open_alerts_by_kind" {
  for_each = toset(local.metric_alert_kinds)

  project          = var.project_id
  name             = "gcwal/${var.name_prefix}/open_alerts/${each.key}"
  description      = "Open alerts of kind ${replace(each.key, "_", "-")}."
  filter           = "${local.metrics_filter} AND jsonPayload.metrics.openAlerts.${each.key} >= 0"
  value_extractor  = "EXTRACT(jsonPayload.metrics.openAlerts.${each.key})"
  label_extractors = { repository = "EXTRACT(jsonPayload.repository)" }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "gcwal open ${replace(each.key, "_", "-")} alerts (${var.name_prefix})"
    labels {
      key         = "repository"
      value_type  = "STRING"
      description = "the repository URL the pipeline watches"
    }
  }

  bucket_options {
    exponential_buckets {
      scale              = local.metric_buckets["count"].scale
      growth_factor      = local.metric_buckets["count"].growth_factor
      num_finite_buckets = local.metric_buckets["count"].num_finite_buckets
    }
  }
}

locals {
  # Policies on the figures: name -> metric, threshold, and what to do.
  metric_policies = {
    archive_lag = {
      metric    = google_logging_metric.figure["archive_lag_seconds"].name
      threshold = var.thresholds.stall_minutes * 60
      duration  = "0s"
      what      = "no WAL has reached the archive for longer than ${var.thresholds.stall_minutes} minutes"
      action    = "check archive_command and pg_stat_archiver on the database host; on a quiet database set archive_timeout below the threshold"
    }
    last_valid_backup_age = {
      metric    = google_logging_metric.figure["last_valid_backup_age_seconds"].name
      threshold = var.thresholds.backup_max_age_hours * 3600
      duration  = "0s"
      what      = "the newest valid backup is older than ${var.thresholds.backup_max_age_hours} hours"
      action    = "run gcwal backup-push (and check why the scheduled one did not run or did not validate)"
    }
    pending_objects = {
      metric    = google_logging_metric.figure["pending_objects"].name
      threshold = 0
      duration  = "${var.thresholds.unvalidated_minutes * 60}s"
      what      = "objects have waited for validation longer than ${var.thresholds.unvalidated_minutes} minutes"
      action    = "read the validate function's logs for errors or time-outs"
    }
    corrupt_objects = {
      metric    = google_logging_metric.open_alerts_by_kind["corrupt_object"].name
      threshold = 0
      duration  = "0s"
      what      = "the archive holds an object that failed validation"
      action    = "run gcwal status; take a new base backup now"
    }
    wal_gaps = {
      metric    = google_logging_metric.open_alerts_by_kind["wal_gap"].name
      threshold = 0
      duration  = "0s"
      what      = "a WAL segment is missing from the archive"
      action    = "run gcwal status; take a new base backup now"
    }
  }
}

resource "google_monitoring_alert_policy" "metric" {
  for_each = local.metric_policies

  project      = var.project_id
  display_name = "gcwal (${var.name_prefix}): ${replace(each.key, "_", " ")}"
  combiner     = "OR"

  conditions {
    display_name = each.value.what
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${each.value.metric}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = "1800s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.repository"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "gcwal: ${each.value.what}. ${each.value.action}. The figures are the watchdog's `gcwal metrics` log entries (docs/metrics.md)."
  }

  notification_channels = [for channel in google_monitoring_notification_channel.email : channel.name]
  user_labels           = var.labels
}

# The watchdog itself: no metrics entry for an hour means nothing is watching.
resource "google_monitoring_alert_policy" "metrics_absent" {
  project      = var.project_id
  display_name = "gcwal (${var.name_prefix}): watchdog silent"
  combiner     = "OR"

  conditions {
    display_name = "no gcwal metrics entry for an hour"
    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.runs.name}\""
      duration = "3600s"
      aggregations {
        alignment_period   = "600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The watchdog function has logged no `gcwal metrics` entry for an hour: check its Cloud Scheduler job and its logs. Until it runs, no alert of the pipeline is raised."
  }

  notification_channels = [for channel in google_monitoring_notification_channel.email : channel.name]
  user_labels           = var.labels
}
