output "kubernetes_manifest" {
  description = "The Kubernetes objects to apply (kubectl apply -f -): the annotated service account and the environment for the PostgreSQL container."
  value = join("\n", concat([
    "apiVersion: v1",
    "kind: ServiceAccount",
    "metadata:",
    "  name: ${var.kubernetes_service_account}",
    "  namespace: ${var.namespace}",
    "  annotations:",
    "    iam.gke.io/gcp-service-account: ${module.gcwal.agent_service_account_email}",
    "---",
    "apiVersion: v1",
    "kind: ConfigMap",
    "metadata:",
    "  name: gcwal-env",
    "  namespace: ${var.namespace}",
    "data:",
  ], [for name, value in module.gcwal.agent_env : "  ${name}: \"${value}\""]))
}

output "postgresql_settings" {
  description = "Settings for the PostgreSQL container's postgresql.conf (the image must contain gcwal; envFrom the gcwal-env ConfigMap)."
  value       = join("\n", ["wal_level = replica", "archive_mode = on", module.gcwal.archive_command, "archive_timeout = 60"])
}
