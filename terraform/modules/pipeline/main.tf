# The four Cloud Functions (2nd gen), each built from its own bundle
# (scripts/build-functions.mjs: dist/functions/<name>.zip) and registered in
# its source as cloudEvent('<entry_point>', ...):
#
#   validate   object finalized in the archive bucket
#   catalogue  object finalized, and object deleted (a second Eventarc trigger)
#   prune      Cloud Scheduler -> <prefix>-prune-schedule topic
#   watchdog   Cloud Scheduler -> <prefix>-watchdog-schedule topic
#
# Eventarc's Cloud Storage triggers filter on the bucket only, never on an
# object prefix: every object event in the bucket reaches validate and
# catalogue, which ignore objects outside the repository (GCWAL_REPO's
# prefix) and outside its wal/ and backups/ folders.

locals {
  storage_event = {
    finalized = "google.cloud.storage.object.v1.finalized"
    deleted   = "google.cloud.storage.object.v1.deleted"
  }
  pubsub_event = "google.cloud.pubsub.topic.v1.messagePublished"

  functions = {
    validate = {
      entry_point  = "validate"
      description  = "gcwal: validates every archived object (codec stream, size, CRC32C, WAL page header, backup checksums) within seconds of its upload."
      event_type   = local.storage_event.finalized
      memory       = "512Mi"
      timeout      = 540
      instances    = var.validate_max_instances
      concurrency  = 1
      retry_policy = "RETRY_POLICY_RETRY"
    }
    catalogue = {
      entry_point = "catalogue"
      description = "gcwal: keeps the catalogue of WAL ranges, timelines and backups, from object events."
      event_type  = local.storage_event.finalized
      memory      = "512Mi"
      timeout     = 120
      # Few instances, many events each: one instance coalesces the events
      # that arrive together into one catalogue write (the catalogue is one
      # object, and Cloud Storage allows about one write a second to it).
      instances    = 3
      concurrency  = 50
      retry_policy = "RETRY_POLICY_RETRY"
    }
    prune = {
      entry_point = "prune"
      description = "gcwal: applies the retention policy, deleting exactly the objects its plan names."
      event_type  = local.pubsub_event
      memory      = "512Mi"
      timeout     = 540
      # Never two prunes at once; a failed run is simply redone by the next
      # scheduled one rather than retried.
      instances    = 1
      concurrency  = 1
      retry_policy = "RETRY_POLICY_DO_NOT_RETRY"
    }
    watchdog = {
      entry_point  = "watchdog"
      description  = "gcwal: alerts when archiving stalls, backups are too old or objects sit unvalidated."
      event_type   = local.pubsub_event
      memory       = "256Mi"
      timeout      = 120
      instances    = 1
      concurrency  = 1
      retry_policy = "RETRY_POLICY_DO_NOT_RETRY"
    }
  }

  schedule_topic_ids = { for name, topic in google_pubsub_topic.schedule : name => topic.id }

  # The functions' whole configuration, named as in functions/config.ts
  # (FUNCTIONS_CONFIG_TABLE); unset rules are left out, not sent empty.
  function_env_all = {
    GCWAL_REPO                 = var.repository_url
    GCWAL_CATALOGUE_REPO       = var.catalogue_repository_url
    GOOGLE_CLOUD_PROJECT       = var.project_id
    GCWAL_EVENTS_TOPIC         = google_pubsub_topic.events.name
    GCWAL_ALERTS_TOPIC         = google_pubsub_topic.alerts.name
    GCWAL_RETAIN_FULL          = var.retention.retain_full == null ? null : tostring(var.retention.retain_full)
    GCWAL_RETAIN_DAYS          = var.retention.retain_days == null ? null : tostring(var.retention.retain_days)
    GCWAL_WAL_RETAIN_DAYS      = var.retention.wal_retain_days == null ? null : tostring(var.retention.wal_retain_days)
    GCWAL_PRUNE_DRY_RUN        = tostring(var.retention.dry_run)
    GCWAL_STALL_MINUTES        = tostring(var.thresholds.stall_minutes)
    GCWAL_BACKUP_MAX_AGE_HOURS = tostring(var.thresholds.backup_max_age_hours)
    GCWAL_UNVALIDATED_MINUTES  = tostring(var.thresholds.unvalidated_minutes)
    GCWAL_GAP_GRACE_MINUTES    = tostring(var.thresholds.gap_grace_minutes)
  }
  function_env = { for name, value in local.function_env_all : name => value if value != null }
}

# --- source -------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  project  = var.project_id
  name     = var.sources_bucket_name
  location = upper(var.region)
  labels   = var.labels
  # Holds only build inputs, reproducible from the repository.
  force_destroy = true

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}

# Named after the archive's MD5 so that a changed bundle is a new object and
# redeploys its function, and an unchanged one (the build is deterministic)
# changes nothing.
resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  bucket       = google_storage_bucket.sources.name
  name         = "functions/${each.key}-${filemd5("${var.source_dir}/${each.key}.zip")}.zip"
  source       = "${var.source_dir}/${each.key}.zip"
  content_type = "application/zip"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.build_service_account_email}"
}

# --- functions -------------------------------------------------------------------

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${each.key}"
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = each.value.entry_point
    service_account = var.build_service_account_id
    source {
      storage_source {
        bucket = google_storage_bucket_object.source[each.key].bucket
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = var.functions_service_account_email
    environment_variables            = local.function_env
    available_memory                 = each.value.memory
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    min_instance_count               = 0
    max_instance_count               = each.value.instances
    max_instance_request_concurrency = each.value.concurrency
    # Eventarc and Pub/Sub deliveries count as internal traffic.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
  }

  event_trigger {
    event_type            = each.value.event_type
    trigger_region        = each.value.event_type == local.pubsub_event ? var.region : var.trigger_location
    pubsub_topic          = lookup(local.schedule_topic_ids, each.key, null)
    retry_policy          = each.value.retry_policy
    service_account_email = var.trigger_service_account_email

    dynamic "event_filters" {
      for_each = each.value.event_type == local.pubsub_event ? [] : [var.bucket_name]
      content {
        attribute = "bucket"
        value     = event_filters.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.retention.retain_full != null || var.retention.retain_days != null
      error_message = "no retention policy: set retain_full or retain_days (or both); the functions refuse to start without one."
    }
    precondition {
      condition     = var.retention.wal_retain_days == null || var.retention.retain_days == null || try(var.retention.wal_retain_days >= var.retention.retain_days, false)
      error_message = "wal_retain_days is shorter than retain_days: WAL is always kept for the whole backup window."
    }
  }
}

# The catalogue also follows deletions (prune's, and anyone else's): a second
# trigger on the same function's service.
resource "google_eventarc_trigger" "catalogue_deleted" {
  project         = var.project_id
  location        = var.trigger_location
  name            = "${var.name_prefix}-catalogue-deleted"
  labels          = var.labels
  service_account = var.trigger_service_account_email

  matching_criteria {
    attribute = "type"
    value     = local.storage_event.deleted
  }
  matching_criteria {
    attribute = "bucket"
    value     = var.bucket_name
  }

  destination {
    cloud_run_service {
      # a 2nd gen function's Cloud Run service has the function's name
      service = google_cloudfunctions2_function.function["catalogue"].name
      region  = var.region
    }
  }
}

# Event deliveries (both triggers of every function) authenticate as the
# trigger account, which may invoke exactly these four services.
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  for_each = google_cloudfunctions2_function.function

  project  = var.project_id
  location = var.region
  name     = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.trigger_service_account_email}"
}
