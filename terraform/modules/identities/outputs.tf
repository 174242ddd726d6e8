output "agent_service_account_email" {
  description = "Email of the agent's service account (database hosts act as it)."
  value       = google_service_account.agent.email
}

output "agent_service_account_name" {
  description = "Resource name of the agent's service account (projects/P/serviceAccounts/EMAIL), for IAM bindings on it such as Workload Identity."
  value       = google_service_account.agent.name
}

output "functions_service_account_email" {
  description = "Email of the functions' service account."
  value       = google_service_account.functions.email
}

output "trigger_service_account_email" {
  description = "Email of the account events are delivered as."
  value       = google_service_account.trigger.email
}

output "build_service_account_id" {
  description = "Resource name of the functions' build account (projects/P/serviceAccounts/EMAIL)."
  value       = google_service_account.build.id
}

output "build_service_account_email" {
  description = "Email of the functions' build account."
  value       = google_service_account.build.email
}
