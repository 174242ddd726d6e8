# PostgreSQL on GKE archiving into gcwal through Workload Identity: the pods'
# Kubernetes service account acts as the agent's Google service account. The
# cluster needs Workload Identity enabled (--workload-pool=PROJECT.svc.id.goog)
# and the node pool the GKE metadata server (the default on Autopilot).

module "gcwal" {
  source = "../.."

  project_id            = var.project_id
  region                = var.region
  bucket_name           = var.bucket_name
  repository_prefix     = "${var.namespace}/${var.kubernetes_service_account}"
  alert_email_addresses = var.alert_email_addresses
}

locals {
  workload_pool = "${coalesce(var.cluster_project_id, var.project_id)}.svc.id.goog"
}

# The Kubernetes service account may act as the agent, and nothing else may.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = module.gcwal.agent_service_account_name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.namespace}/${var.kubernetes_service_account}]"
}
