variable "project_id" {
  description = "Project to deploy gcwal into."
  type        = string
}

variable "region" {
  description = "Region of the functions (and of the bucket, which this example keeps in the same place)."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "Name of the archive bucket (globally unique)."
  type        = string
}

variable "alert_email_addresses" {
  description = "Who gets an email when an alert is published."
  type        = list(string)
  default     = []
}

variable "pool_id" {
  description = "ID of the workload identity pool created for the database hosts."
  type        = string
  default     = "gcwal-hosts"
}

variable "provider_id" {
  description = "ID of the OIDC provider in that pool."
  type        = string
  default     = "hosts-oidc"
}

variable "oidc_issuer_uri" {
  description = "Issuer of the tokens the database hosts present (e.g. your identity provider, or a Kubernetes cluster's service account issuer)."
  type        = string

  validation {
    condition     = can(regex("^https://", var.oidc_issuer_uri))
    error_message = "oidc_issuer_uri must be an https:// URL."
  }
}

variable "host_subject" {
  description = "The `sub` claim of the database host's token: only this subject may act as the agent."
  type        = string
}

variable "token_file" {
  description = "Where on the host the OIDC token is kept fresh (by your identity provider's agent); google-auth-library reads it on every token exchange."
  type        = string
  default     = "/var/run/gcwal/oidc-token"
}
