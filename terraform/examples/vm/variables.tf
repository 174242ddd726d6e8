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

variable "zone" {
  description = "Zone of the database VM."
  type        = string
  default     = "europe-west1-b"
}

variable "machine_type" {
  description = "Machine type of the database VM."
  type        = string
  default     = "e2-standard-2"
}

variable "gcwal_package" {
  description = "What `npm install -g` installs on the VM: the package name, a version (gcwal@0.1.0) or the URL of the tarball Cloud Build packed."
  type        = string
  default     = "gcwal"
}
