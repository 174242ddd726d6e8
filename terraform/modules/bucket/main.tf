# The archive bucket and, optionally, the bucket that holds the catalogue.
#
# No lifecycle rule: every object under wal/ and backups/ is deleted only by
# the prune function, which knows what a restore still needs (an age-based
# rule cannot know that a week-old segment is the only way from the last
# valid backup to now). Versioning stays off: objects are never overwritten
# (the agent writes create-only), and soft delete covers deletions.

locals {
  day_seconds = 86400
}

# Cloud Storage encrypts with the key as its service agent, so the agent (not
# the callers) needs the key; granted before the bucket is created with it.
resource "google_kms_crypto_key_iam_member" "gcs_service_agent" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${var.gcs_service_agent_email}"
}

resource "google_storage_bucket" "archive" {
  project       = var.project_id
  name          = var.bucket_name
  location      = var.location
  storage_class = var.storage_class
  labels        = var.labels
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * local.day_seconds
  }

  dynamic "retention_policy" {
    for_each = var.retention_period_days == null ? [] : [var.retention_period_days]
    content {
      retention_period = retention_policy.value * local.day_seconds
      is_locked        = var.retention_policy_locked
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = var.retention_period_days != null || !var.retention_policy_locked
      error_message = "retention_policy_locked needs retention_period_days: there is no policy to lock."
    }
    precondition {
      condition     = var.retention_period_days == null || var.catalogue_bucket_name != null
      error_message = "a retention policy needs separate_catalogue_bucket = true: the catalogue is replaced on every change, which a retention policy forbids for young objects."
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_service_agent]
}

# The catalogue is replaced on every change (one object, generation-matched
# writes by the functions). Here it fires no triggers and leaves no
# soft-deleted copies behind; it can always be rebuilt from a listing of the
# archive, so it needs no protection beyond the bucket's.
resource "google_storage_bucket" "catalogue" {
  count = var.catalogue_bucket_name == null ? 0 : 1

  project       = var.project_id
  name          = var.catalogue_bucket_name
  location      = var.location
  storage_class = "STANDARD"
  labels        = var.labels
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_service_agent]
}
