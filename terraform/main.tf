# gcwal on Google Cloud: the archive bucket, least-privilege identities, and
# the serverless pipeline (validate, catalogue, prune, watchdog) that checks
# every archived object, keeps the catalogue, applies retention and alerts.
#
# No provider block: every resource names its project and location, so this
# directory can be applied as is (cloudbuild.yaml does) or used as a module
# (examples/).

locals {
  labels = merge(var.labels, {
    app         = "gcwal"
    environment = var.environment
  })

  bucket_location = upper(coalesce(var.bucket_location, var.region))
  # Eventarc wants the bucket's location, lowercase (europe-west1, eu, us).
  trigger_location = lower(local.bucket_location)

  catalogue_bucket_name = "${var.bucket_name}-catalogue"
  sources_bucket_name   = "${var.bucket_name}-sources"

  repository_suffix        = var.repository_prefix == "" ? "" : "/${var.repository_prefix}"
  repository_url           = "gs://${var.bucket_name}${local.repository_suffix}"
  catalogue_repository_url = var.separate_catalogue_bucket ? "gs://${local.catalogue_bucket_name}${local.repository_suffix}" : null

  # The repository layout (core/layout.ts), for the verification commands in
  # the outputs; test/terraform checks these against core.
  layout = {
    repository = "gcwal.json"
    wal        = "wal/"
    backups    = "backups/"
    catalogue  = "catalogue/catalogue.json"
  }
  repository_root = "${local.repository_url}/"
  catalogue_url   = "${coalesce(local.catalogue_repository_url, local.repository_url)}/${local.layout.catalogue}"

  # What the database host needs (agent/config.ts names); the agent reads the
  # catalogue for `gcwal status`, so it must know where it lives.
  agent_env_all = {
    GCWAL_REPO           = local.repository_url
    GCWAL_CATALOGUE_REPO = local.catalogue_repository_url
  }
  agent_env = { for name, value in local.agent_env_all : name => value if value != null }

  # archive_command/restore_command need only the repository; the values are
  # restricted by the variables' validation to characters that need no
  # quoting inside postgresql.conf's single quotes or a shell.
  archive_command = "archive_command = 'GCWAL_REPO=${local.repository_url} gcwal wal-push %p'"
  restore_command = "restore_command = 'GCWAL_REPO=${local.repository_url} gcwal wal-fetch %f %p'"

  apis = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ], var.kms_key_name == null ? [] : ["cloudkms.googleapis.com"]))
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project = var.project_id
  service = each.value
  # Other workloads in the project may use these APIs too.
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id
}

# Cloud Storage's service agent: publishes object events for the triggers and
# encrypts with the CMEK key. Reading it also makes sure it exists.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

module "bucket" {
  source = "./modules/bucket"

  project_id                 = var.project_id
  bucket_name                = var.bucket_name
  location                   = local.bucket_location
  storage_class              = var.storage_class
  retention_period_days      = var.retention_period_days
  retention_policy_locked    = var.retention_policy_locked
  kms_key_name               = var.kms_key_name
  soft_delete_retention_days = var.soft_delete_retention_days
  catalogue_bucket_name      = var.separate_catalogue_bucket ? local.catalogue_bucket_name : null
  force_destroy              = var.force_destroy
  gcs_service_agent_email    = data.google_storage_project_service_account.gcs.email_address
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

module "identities" {
  source = "./modules/identities"

  project_id              = var.project_id
  project_number          = data.google_project.this.number
  name_prefix             = var.name_prefix
  bucket_name             = module.bucket.bucket_name
  catalogue_bucket_name   = module.bucket.catalogue_bucket_name
  catalogue_bucket_exists = var.separate_catalogue_bucket
  gcs_service_agent_email = data.google_storage_project_service_account.gcs.email_address

  depends_on = [google_project_service.apis]
}

module "pipeline" {
  source = "./modules/pipeline"

  project_id       = var.project_id
  project_number   = data.google_project.this.number
  region           = var.region
  name_prefix      = var.name_prefix
  labels           = local.labels
  bucket_name      = module.bucket.bucket_name
  trigger_location = local.trigger_location

  sources_bucket_name = local.sources_bucket_name
  source_dir          = coalesce(var.function_source_dir, "${path.module}/../dist/functions")

  repository_url           = local.repository_url
  catalogue_repository_url = local.catalogue_repository_url

  functions_service_account_email = module.identities.functions_service_account_email
  trigger_service_account_email   = module.identities.trigger_service_account_email
  build_service_account_id        = module.identities.build_service_account_id
  build_service_account_email     = module.identities.build_service_account_email

  retention = {
    retain_full     = var.retain_full
    retain_days     = var.retain_days
    wal_retain_days = var.wal_retain_days
    dry_run         = var.prune_dry_run
  }
  thresholds = {
    stall_minutes        = var.stall_minutes
    backup_max_age_hours = var.backup_max_age_hours
    unvalidated_minutes  = var.unvalidated_minutes
    gap_grace_minutes    = var.gap_grace_minutes
  }
  schedules = {
    prune    = var.prune_schedule
    watchdog = var.watchdog_schedule
  }
  schedule_time_zone     = var.schedule_time_zone
  validate_max_instances = var.validate_max_instances

  alert_email_addresses = var.alert_email_addresses
  alert_push_endpoint   = var.alert_push_endpoint

  # The functions' first events need their IAM in place (the trigger account
  # may receive events, the GCS service agent may publish them).
  depends_on = [google_project_service.apis, module.identities]
}
