output "instance" {
  description = "The database VM."
  value       = google_compute_instance.db.self_link
}

output "archive_command" {
  description = "What the startup script put in postgresql.conf."
  value       = module.gcwal.archive_command
}

output "verify_commands" {
  description = "Commands that show the pipeline at work."
  value       = module.gcwal.verify_commands
}
