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

variable "cluster_project_id" {
  description = "Project of the GKE cluster (its workload pool is <project>.svc.id.goog). Null: project_id."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Kubernetes namespace of the PostgreSQL pods."
  type        = string
  default     = "postgres"
}

variable "kubernetes_service_account" {
  description = "Kubernetes service account the PostgreSQL pods run as."
  type        = string
  default     = "postgres"
}
