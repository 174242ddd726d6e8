variable "project_id" {
  description = "Project of the functions, topics and jobs."
  type        = string
}

variable "project_number" {
  description = "Number of the project (names the Pub/Sub service agent)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler jobs and the source bucket."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
}

variable "bucket_name" {
  description = "The archive bucket whose object events trigger validate and catalogue."
  type        = string
}

variable "trigger_location" {
  description = "Location of the storage triggers: the bucket's location, lowercase."
  type        = string
}

variable "sources_bucket_name" {
  description = "Bucket created here for the functions' source archives."
  type        = string
}

variable "source_dir" {
  description = "Directory holding <function>.zip for each function (npm run build:functions)."
  type        = string
}

variable "repository_url" {
  description = "GCWAL_REPO: gs://bucket[/prefix]."
  type        = string
}

variable "catalogue_repository_url" {
  description = "GCWAL_CATALOGUE_REPO, or null to keep the catalogue in the repository."
  type        = string
}

variable "functions_service_account_email" {
  description = "Identity the functions run as."
  type        = string
}

variable "trigger_service_account_email" {
  description = "Identity events are delivered as."
  type        = string
}

variable "build_service_account_id" {
  description = "Identity Cloud Build builds the functions as (projects/P/serviceAccounts/EMAIL)."
  type        = string
}

variable "build_service_account_email" {
  description = "Email of the same build identity (reads the source archives)."
  type        = string
}

variable "retention" {
  description = "Prune's policy: counts and windows (null = rule unused) and dry run."
  type = object({
    retain_full     = number
    retain_days     = number
    wal_retain_days = number
    dry_run         = bool
  })
}

variable "thresholds" {
  description = "Alert thresholds passed to the functions."
  type = object({
    stall_minutes        = number
    backup_max_age_hours = number
    unvalidated_minutes  = number
    gap_grace_minutes    = number
  })
}

variable "schedules" {
  description = "Cron schedules of the scheduled functions, by function name."
  type = object({
    prune    = string
    watchdog = string
  })
}

variable "schedule_time_zone" {
  description = "Time zone of the schedules."
  type        = string
}

variable "validate_max_instances" {
  description = "Most validate instances at once."
  type        = number
}

variable "alert_email_addresses" {
  description = "Addresses Cloud Monitoring notifies when an alert is published."
  type        = list(string)
}

variable "alert_push_endpoint" {
  description = "HTTPS endpoint for a push subscription on the alerts topic, or null."
  type        = string
}
