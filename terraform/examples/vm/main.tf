# A PostgreSQL 15 VM archiving into gcwal with the VM's attached service
# account: no key anywhere, gcwal gets its tokens from the metadata server.
#
#   terraform init && terraform apply -var project_id=my-project -var bucket_name=my-project-pg-archive
#
# The startup script installs Node.js 22, PostgreSQL 15 and gcwal, writes the
# environment to /etc/gcwal/env, sets archive_command, and schedules a daily
# base backup with a systemd timer.

module "gcwal" {
  source = "../.."

  project_id            = var.project_id
  region                = var.region
  bucket_name           = var.bucket_name
  repository_prefix     = "db-1"
  alert_email_addresses = var.alert_email_addresses
}

resource "google_project_service" "compute" {
  project            = var.project_id
  service            = "compute.googleapis.com"
  disable_on_destroy = false
}

resource "google_compute_instance" "db" {
  project      = var.project_id
  zone         = var.zone
  name         = "db-1"
  machine_type = var.machine_type

  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
      size  = 50
    }
  }

  network_interface {
    network = "default"
    # An ephemeral public address for apt and npm; with Cloud NAT and Private
    # Google Access instead, drop it.
    access_config {}
  }

  # The agent's identity. The cloud-platform scope leaves authorisation to
  # IAM, where the account may only create and read objects in the bucket.
  service_account {
    email  = module.gcwal.agent_service_account_email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot = true
  }

  metadata = {
    enable-oslogin = "TRUE"
  }

  metadata_startup_script = templatefile("${path.module}/startup.sh.tftpl", {
    gcwal_package   = var.gcwal_package
    agent_env_lines = module.gcwal.agent_env_lines
    archive_command = module.gcwal.archive_command
  })

  depends_on = [google_project_service.compute]
}
