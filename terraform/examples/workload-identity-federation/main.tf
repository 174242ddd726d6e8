# A database host outside Google Cloud (on premises, another cloud) archiving
# into gcwal without a service-account key: it exchanges a token from its own
# identity provider (OIDC) for a short-lived Google token acting as the agent.
# The credentials file the host gets (gcloud ... create-cred-config) holds no
# secret, only where to find the token and which account to act as.

module "gcwal" {
  source = "../.."

  project_id            = var.project_id
  region                = var.region
  bucket_name           = var.bucket_name
  repository_prefix     = "onprem-db"
  alert_email_addresses = var.alert_email_addresses
}

# The token exchange (STS) and acting as the agent (IAM Credentials).
resource "google_project_service" "federation" {
  for_each = toset(["sts.googleapis.com", "iamcredentials.googleapis.com"])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_iam_workload_identity_pool" "hosts" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "gcwal database hosts"
  description               = "Database hosts outside Google Cloud that archive into gcwal."

  depends_on = [google_project_service.federation]
}

resource "google_iam_workload_identity_pool_provider" "oidc" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.hosts.workload_identity_pool_id
  workload_identity_pool_provider_id = var.provider_id
  display_name                       = "database hosts (OIDC)"

  attribute_mapping = {
    "google.subject" = "assertion.sub"
  }
  # Only the named host's tokens are accepted at all.
  attribute_condition = "assertion.sub == \"${var.host_subject}\""

  oidc {
    issuer_uri = var.oidc_issuer_uri
  }
}

# That one federated identity may act as the agent.
resource "google_service_account_iam_member" "host_acts_as_agent" {
  service_account_id = module.gcwal.agent_service_account_name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.hosts.name}/subject/${var.host_subject}"
}
