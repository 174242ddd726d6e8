variable "project_id" {
  description = "Project of the service accounts and the custom role."
  type        = string
}

variable "project_number" {
  description = "Number of the project (names its service agents)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account IDs and the custom role."
  type        = string
}

variable "bucket_name" {
  description = "The archive bucket."
  type        = string
}

variable "catalogue_bucket_name" {
  description = "The separate catalogue bucket, or null."
  type        = string
}

variable "catalogue_bucket_exists" {
  description = "Whether catalogue_bucket_name is set (known at plan time, unlike a bucket attribute)."
  type        = bool
}

variable "gcs_service_agent_email" {
  description = "Email of the project's Cloud Storage service agent."
  type        = string
}
