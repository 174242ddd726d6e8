output "bucket_name" {
  description = "The archive bucket."
  value       = module.bucket.bucket_name
}

output "catalogue_bucket_name" {
  description = "The catalogue bucket, or null when the catalogue lives in the archive bucket."
  value       = module.bucket.catalogue_bucket_name
}

output "repository_url" {
  description = "GCWAL_REPO for the database host and the functions."
  value       = local.repository_url
}

output "catalogue_url" {
  description = "The catalogue object (gcloud storage cat it to see what the pipeline knows)."
  value       = local.catalogue_url
}

output "agent_service_account_email" {
  description = "The agent's service account: attach it to the VM, bind it to the Kubernetes service account, or impersonate it through workload identity federation."
  value       = module.identities.agent_service_account_email
}

output "agent_service_account_name" {
  description = "Resource name of the agent's service account, for IAM bindings on it (roles/iam.workloadIdentityUser)."
  value       = module.identities.agent_service_account_name
}

output "functions_service_account_email" {
  description = "The functions' service account."
  value       = module.identities.functions_service_account_email
}

output "events_topic" {
  description = "Topic of validation outcomes and prune reports."
  value       = module.pipeline.events_topic
}

output "alerts_topic" {
  description = "Topic of alerts and their resolutions (JSON: severity, cluster, kind, summary, details)."
  value       = module.pipeline.alerts_topic
}

output "alerts_inbox_subscription" {
  description = "Pull subscription keeping every alert for a week."
  value       = module.pipeline.alerts_inbox_subscription
}

output "dead_letter_topic" {
  description = "Dead-letter topic of the alert subscriptions."
  value       = module.pipeline.dead_letter_topic
}

output "dead_letter_subscription" {
  description = "Subscription keeping undeliverable alerts."
  value       = module.pipeline.dead_letter_subscription
}

output "function_names" {
  description = "The deployed functions, by entry point."
  value       = module.pipeline.function_names
}

output "agent_env" {
  description = "Environment for gcwal on the database host (names from the agent's configuration table)."
  value       = local.agent_env
}

output "agent_env_lines" {
  description = "agent_env as NAME=value lines, e.g. for /etc/gcwal/env or a systemd EnvironmentFile."
  value       = join("\n", [for name, value in local.agent_env : "${name}=${value}"])
}

output "archive_command" {
  description = "The postgresql.conf line that archives WAL (with wal_level = replica and archive_mode = on)."
  value       = local.archive_command
}

output "restore_command" {
  description = "The postgresql.conf line that restores WAL (gcwal backup-fetch writes it for you on a restore)."
  value       = local.restore_command
}

output "verify_commands" {
  description = "Commands that show the pipeline at work once WAL has been archived."
  value = join("\n", [
    "gcloud storage ls ${local.repository_root}${local.layout.wal}",
    "gcloud storage ls ${local.repository_root}${local.layout.backups}",
    "gcloud storage cat ${local.repository_root}${local.layout.repository}",
    "gcloud storage cat ${local.catalogue_url}",
    "gcloud pubsub subscriptions pull ${module.pipeline.alerts_inbox_subscription} --project=${var.project_id} --limit=10",
  ])
}
