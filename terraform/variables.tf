# Inputs of the gcwal deployment. Only project_id, region and bucket_name are
# required; everything else has a default a platform team can apply as is.

# --- where -------------------------------------------------------------------

variable "project_id" {
  description = "Project that holds the bucket, the functions, the topics and the service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits and hyphens), not a project number or name."
  }
}

variable "region" {
  description = "Region of the Cloud Functions, Cloud Scheduler jobs and the function source bucket, e.g. europe-west1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "environment" {
  description = "Environment name, set as the `environment` label on everything (e.g. prod, staging)."
  type        = string
  default     = "prod"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.environment))
    error_message = "environment must be a valid label value: lowercase letters, digits, _ and -, starting with a letter, at most 63 characters."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (service accounts, functions, topics, jobs). The default names the topics gcwal-events and gcwal-alerts; use e.g. gcwal-staging to run two deployments in one project."
  type        = string
  default     = "gcwal"
  nullable    = false

  validation {
    # service account IDs are at most 30 characters and the longest suffix is -functions
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 lowercase letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "labels" {
  description = "Extra labels for every resource that takes labels."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys must start with a lowercase letter; keys and values may hold lowercase letters, digits, _ and -, at most 63 characters."
  }
}

variable "enable_apis" {
  description = "Enable the Google APIs the deployment uses. Set false when a project factory manages services."
  type        = bool
  default     = true
  nullable    = false
}

# --- the bucket --------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the bucket that holds the archive (created here). The catalogue bucket and the function source bucket are named after it, with -catalogue and -sources."
  type        = string

  validation {
    # 53 leaves room for the -catalogue suffix within the 63-character limit
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,51}[a-z0-9]$", var.bucket_name)) && !can(regex("^goog", var.bucket_name))
    error_message = "bucket_name must be 3-53 lowercase letters, digits, - and _ (no dots), start and end with a letter or digit, and not start with goog."
  }
}

variable "bucket_location" {
  description = "Location of the bucket: a region (e.g. europe-west1) or a multi-region (EU, US, ASIA). Defaults to region. The storage triggers are created in this location, as Eventarc requires."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_location == null || can(regex("^([A-Za-z]+-[A-Za-z]+[0-9]+|EU|US|ASIA|eu|us|asia)$", var.bucket_location))
    error_message = "bucket_location must be a region or one of the multi-regions EU, US, ASIA (dual-regions are not supported by this module's triggers)."
  }
}

variable "repository_prefix" {
  description = "Folder of the repository inside the bucket: GCWAL_REPO becomes gs://<bucket>/<prefix>. Empty puts the repository at the bucket's root. Objects outside it are ignored by the functions."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.repository_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.repository_prefix))
    error_message = "repository_prefix must be empty or folder names of letters, digits, ., _ and - separated by single slashes, without a leading or trailing slash."
  }
}

variable "storage_class" {
  description = "Default storage class of the archive bucket. STANDARD suits WAL that is read back by restores; NEARLINE only pays off when backups are kept for months and rarely read."
  type        = string
  default     = "STANDARD"
  nullable    = false

  validation {
    condition     = contains(["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"], var.storage_class)
    error_message = "storage_class must be one of STANDARD, NEARLINE, COLDLINE, ARCHIVE."
  }
}

variable "retention_period_days" {
  description = "Bucket retention policy: no object can be deleted or replaced before it is this many days old, by anyone (ransomware and mistake protection). Null: no policy. Prune then cannot delete anything younger; keep it below the retention window. Requires separate_catalogue_bucket."
  type        = number
  default     = null

  validation {
    condition     = var.retention_period_days == null || (try(var.retention_period_days >= 1 && var.retention_period_days <= 36500 && floor(var.retention_period_days) == var.retention_period_days, false))
    error_message = "retention_period_days must be a whole number of days between 1 and 36500, or null."
  }
}

variable "retention_policy_locked" {
  description = "Lock the retention policy (Bucket Lock). IRREVERSIBLE: the policy can then never be shortened or removed, and the bucket cannot be deleted until every object has aged out. Requires retention_period_days."
  type        = bool
  default     = false
  nullable    = false
}

variable "kms_key_name" {
  description = "Cloud KMS key for the buckets' default encryption (CMEK), projects/P/locations/L/keyRings/R/cryptoKeys/K, in the bucket's location. The Cloud Storage service agent is granted encrypter/decrypter on it. Null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must look like projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "soft_delete_retention_days" {
  description = "Soft delete on the archive bucket: deleted objects (by prune, or by mistake) can be restored for this many days. 0 disables it; otherwise 7 to 90."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "soft_delete_retention_days must be 0 or between 7 and 90."
  }
}

variable "separate_catalogue_bucket" {
  description = "Keep the catalogue (catalogue/catalogue.json, replaced on every change) in its own bucket, <bucket_name>-catalogue, without soft delete and without triggers. Recommended: in the archive bucket every replacement would be kept by soft delete and would fire the functions again. Required with a retention policy, under which an object cannot be replaced while young."
  type        = bool
  default     = true
  nullable    = false
}

variable "force_destroy" {
  description = "Let terraform destroy delete the buckets with their objects. Leave false for a real archive; set true for a throwaway test deployment."
  type        = bool
  default     = false
  nullable    = false
}

# --- retention applied by the prune function ---------------------------------

variable "retain_full" {
  description = "Prune keeps the newest N full backups (GCWAL_RETAIN_FULL). Null: no count rule. At least one of retain_full and retain_days must be set."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.retain_full == null || try(var.retain_full >= 1 && var.retain_full <= 10000 && floor(var.retain_full) == var.retain_full, false)
    error_message = "retain_full must be a whole number between 1 and 10000, or null."
  }
}

variable "retain_days" {
  description = "Prune keeps every backup needed to restore to any point in the last D days (GCWAL_RETAIN_DAYS). Null: no window rule."
  type        = number
  default     = null

  validation {
    condition     = var.retain_days == null || try(var.retain_days >= 1 && var.retain_days <= 36500 && floor(var.retain_days) == var.retain_days, false)
    error_message = "retain_days must be a whole number between 1 and 36500, or null."
  }
}

variable "wal_retain_days" {
  description = "WAL is kept at least this many days (GCWAL_WAL_RETAIN_DAYS), and never less than the kept backups need. Null: only what the backups and the window need."
  type        = number
  default     = null

  validation {
    condition     = var.wal_retain_days == null || try(var.wal_retain_days >= 1 && var.wal_retain_days <= 36500 && floor(var.wal_retain_days) == var.wal_retain_days, false)
    error_message = "wal_retain_days must be a whole number between 1 and 36500, or null."
  }
}

variable "prune_dry_run" {
  description = "Prune publishes its plan on the events topic but deletes nothing (GCWAL_PRUNE_DRY_RUN). Useful for the first days of a new deployment."
  type        = bool
  default     = false
  nullable    = false
}

variable "prune_schedule" {
  description = "When prune runs (cron, in schedule_time_zone)."
  type        = string
  default     = "17 3 * * *"
  nullable    = false

  validation {
    condition     = length(split(" ", trimspace(var.prune_schedule))) == 5
    error_message = "prune_schedule must be a five-field cron expression, e.g. \"17 3 * * *\"."
  }
}

# --- alert thresholds (watchdog and catalogue) -------------------------------

variable "stall_minutes" {
  description = "Alert when no WAL has arrived for this many minutes (GCWAL_STALL_MINUTES). Keep it well above archive_timeout."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.stall_minutes >= 1 && var.stall_minutes <= 100000 && floor(var.stall_minutes) == var.stall_minutes
    error_message = "stall_minutes must be a whole number between 1 and 100000."
  }
}

variable "backup_max_age_hours" {
  description = "Alert when the newest valid full backup is older than this many hours (GCWAL_BACKUP_MAX_AGE_HOURS). Daily backups: 36 leaves room for one late run."
  type        = number
  default     = 36
  nullable    = false

  validation {
    condition     = var.backup_max_age_hours >= 1 && var.backup_max_age_hours <= 100000 && floor(var.backup_max_age_hours) == var.backup_max_age_hours
    error_message = "backup_max_age_hours must be a whole number between 1 and 100000."
  }
}

variable "unvalidated_minutes" {
  description = "Alert when an object has waited this many minutes for validation (GCWAL_UNVALIDATED_MINUTES)."
  type        = number
  default     = 15
  nullable    = false

  validation {
    condition     = var.unvalidated_minutes >= 1 && var.unvalidated_minutes <= 100000 && floor(var.unvalidated_minutes) == var.unvalidated_minutes
    error_message = "unvalidated_minutes must be a whole number between 1 and 100000."
  }
}

variable "gap_grace_minutes" {
  description = "A missing WAL segment becomes a gap alert once a later segment has been archived for this many minutes (GCWAL_GAP_GRACE_MINUTES): segments upload in parallel and may land out of order."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.gap_grace_minutes >= 0 && var.gap_grace_minutes <= 100000 && floor(var.gap_grace_minutes) == var.gap_grace_minutes
    error_message = "gap_grace_minutes must be a whole number between 0 and 100000."
  }
}

variable "watchdog_schedule" {
  description = "When the watchdog runs (cron, in schedule_time_zone). Every few minutes: an alert is at most this late."
  type        = string
  default     = "*/5 * * * *"
  nullable    = false

  validation {
    condition     = length(split(" ", trimspace(var.watchdog_schedule))) == 5
    error_message = "watchdog_schedule must be a five-field cron expression, e.g. \"*/5 * * * *\"."
  }
}

variable "schedule_time_zone" {
  description = "Time zone of prune_schedule and watchdog_schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_time_zone))
    error_message = "schedule_time_zone must be a tz database name such as Etc/UTC or Europe/Paris."
  }
}

# --- functions ----------------------------------------------------------------

variable "validate_max_instances" {
  description = "Most validate instances running at once (each validates one object). Bounds cost during a WAL burst; events beyond it wait and are retried."
  type        = number
  default     = 20
  nullable    = false

  validation {
    condition     = var.validate_max_instances >= 1 && var.validate_max_instances <= 1000 && floor(var.validate_max_instances) == var.validate_max_instances
    error_message = "validate_max_instances must be a whole number between 1 and 1000."
  }
}

variable "function_source_dir" {
  description = "Directory holding <function>.zip for each function, as `npm run build:functions` writes them. Null: dist/functions of this checkout."
  type        = string
  default     = null

  validation {
    condition     = var.function_source_dir == null || try(trimspace(var.function_source_dir) != "", false)
    error_message = "function_source_dir must be a directory path, or null for dist/functions."
  }
}

# --- alert delivery -----------------------------------------------------------

variable "alert_email_addresses" {
  description = "Email addresses notified through Cloud Monitoring whenever an alert (or its resolution) is published. The message itself is read from the <name_prefix>-alerts-inbox subscription."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for address in var.alert_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "alert_email_addresses must hold email addresses."
  }
}

variable "alert_push_endpoint" {
  description = "HTTPS endpoint that receives every alert as a Pub/Sub push (the alert JSON as the request body, unwrapped), e.g. a chat webhook relay. Null: no push subscription."
  type        = string
  default     = null

  validation {
    condition     = var.alert_push_endpoint == null || can(regex("^https://[^\\s]+$", var.alert_push_endpoint))
    error_message = "alert_push_endpoint must be an https:// URL."
  }
}
