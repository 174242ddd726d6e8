output "create_credentials_command" {
  description = "Run once (anywhere with gcloud) to write the host's credentials configuration; copy the file to the host."
  value       = "gcloud iam workload-identity-pools create-cred-config ${google_iam_workload_identity_pool_provider.oidc.name} --service-account=${module.gcwal.agent_service_account_email} --credential-source-file=${var.token_file} --output-file=wif.json"
}

output "host_env_lines" {
  description = "Environment for gcwal on the host (/etc/gcwal/env), with the credentials file installed at /etc/gcwal/wif.json."
  value       = "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcwal/wif.json\n${module.gcwal.agent_env_lines}"
}

output "archive_command" {
  description = "The postgresql.conf line."
  value       = module.gcwal.archive_command
}
