output "bucket_name" {
  description = "Name of the archive bucket."
  value       = google_storage_bucket.archive.name
}

output "bucket_url" {
  description = "gs:// URL of the archive bucket."
  value       = google_storage_bucket.archive.url
}

output "catalogue_bucket_name" {
  description = "Name of the catalogue bucket, or null when the catalogue lives in the archive bucket."
  value       = one(google_storage_bucket.catalogue[*].name)
}
