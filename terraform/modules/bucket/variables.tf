variable "project_id" {
  description = "Project that owns the buckets."
  type        = string
}

variable "bucket_name" {
  description = "Name of the archive bucket."
  type        = string
}

variable "location" {
  description = "Location of both buckets (region or multi-region, uppercase as Cloud Storage reports it)."
  type        = string
}

variable "storage_class" {
  description = "Default storage class of the archive bucket."
  type        = string
}

variable "retention_period_days" {
  description = "Retention policy of the archive bucket in days; null for none."
  type        = number
}

variable "retention_policy_locked" {
  description = "Lock the retention policy (irreversible)."
  type        = bool
}

variable "kms_key_name" {
  description = "Default CMEK key of both buckets; null for Google-managed encryption."
  type        = string
}

variable "soft_delete_retention_days" {
  description = "Soft-delete window of the archive bucket in days; 0 disables soft delete."
  type        = number
}

variable "catalogue_bucket_name" {
  description = "Name of the separate catalogue bucket to create; null keeps the catalogue in the archive bucket."
  type        = string
}

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets."
  type        = bool
}

variable "gcs_service_agent_email" {
  description = "Email of the project's Cloud Storage service agent (granted the CMEK key)."
  type        = string
}

variable "labels" {
  description = "Labels of both buckets."
  type        = map(string)
}
