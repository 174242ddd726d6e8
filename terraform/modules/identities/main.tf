# Who may do what, least privilege:
#
#   agent      the database host: create and read objects in the archive
#              bucket (and read the catalogue). No delete, no overwrite, no
#              bucket or IAM permission, nothing outside these buckets.
#   functions  the Cloud Functions: read and list; delete (prune, and the
#              catalogue's replacement, which Cloud Storage treats as a
#              delete of the old generation); create (the catalogue); publish
#              to the events and alerts topics (granted on the topics, in the
#              pipeline module).
#   trigger    the identity Eventarc and Pub/Sub deliver events as: receive
#              events, invoke the four functions (granted per function, in
#              the pipeline module).
#   build      Cloud Build's identity when it builds the functions' images.
#
# Service agents: Cloud Storage's publishes the object events (Eventarc
# storage triggers deliver through Pub/Sub topics they create, so this is
# project-wide); Pub/Sub's mints tokens as the trigger account for push
# deliveries (needed on projects whose Pub/Sub agent predates April 2021,
# harmless otherwise).

locals {
  # Predefined roles; neither holds storage.objects.delete or any
  # *.setIamPolicy (test/terraform checks this list).
  agent_archive_roles   = ["roles/storage.objectCreator", "roles/storage.objectViewer"]
  agent_catalogue_roles = ["roles/storage.objectViewer"]

  functions_object_permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
  ]

  buckets = merge(
    { archive = var.bucket_name },
    var.catalogue_bucket_exists ? { catalogue = var.catalogue_bucket_name } : {},
  )

  pubsub_service_agent = "service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account" "agent" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-agent"
  display_name = "gcwal agent (database hosts)"
  description  = "Archives WAL and backups: creates and reads objects in the gcwal bucket, never deletes."
}

resource "google_service_account" "functions" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-functions"
  display_name = "gcwal functions"
  description  = "Runs the gcwal Cloud Functions: validates, catalogues, prunes, alerts."
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-trigger"
  display_name = "gcwal event delivery"
  description  = "Eventarc and Pub/Sub deliver events to the gcwal functions as this account."
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "gcwal function builds"
  description  = "Cloud Build builds the gcwal functions' images as this account."
}

# --- agent ----------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "agent_archive" {
  for_each = toset(local.agent_archive_roles)

  bucket = var.bucket_name
  role   = each.value
  member = "serviceAccount:${google_service_account.agent.email}"
}

resource "google_storage_bucket_iam_member" "agent_catalogue" {
  for_each = var.catalogue_bucket_exists ? toset(local.agent_catalogue_roles) : toset([])

  bucket = var.catalogue_bucket_name
  role   = each.value
  member = "serviceAccount:${google_service_account.agent.email}"
}

# --- functions ------------------------------------------------------------------

# Exactly the object permissions the functions use, on these buckets only.
# (roles/storage.objectUser would add update, restore and multipart
# permissions; roles/storage.objectAdmin would add object IAM.)
resource "google_project_iam_custom_role" "functions_objects" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_functions_objects"
  title       = "gcwal functions: objects"
  description = "Create, read, list and delete objects; granted on the gcwal buckets only."
  permissions = local.functions_object_permissions
}

resource "google_storage_bucket_iam_member" "functions" {
  for_each = local.buckets

  bucket = each.value
  role   = google_project_iam_custom_role.functions_objects.name
  member = "serviceAccount:${google_service_account.functions.email}"
}

# --- event delivery ---------------------------------------------------------------

# Eventarc grants this role only at project level.
resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

resource "google_project_iam_member" "gcs_service_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.gcs_service_agent_email}"
}

resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}

# --- builds ------------------------------------------------------------------------

# What Cloud Build needs to build a function from source (read the staged
# source, write the image to Artifact Registry, write logs).
resource "google_project_iam_member" "build_builder" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build.email}"
}
