# Topics the functions publish on (names as functions/config.ts defaults when
# name_prefix is gcwal), the dead-letter topic, the topics Cloud Scheduler
# feeds, and the subscriptions that keep alerts until someone reads them.

locals {
  pubsub_service_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  week                 = "604800s"
}

resource "google_pubsub_topic" "events" {
  project = var.project_id
  name    = "${var.name_prefix}-events"
  labels  = var.labels
  # Validation outcomes and prune reports: kept a day so a new subscriber can
  # seek back and see what happened.
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "alerts" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-alerts"
  labels                     = var.labels
  message_retention_duration = local.week
}

# Messages a subscription could not deliver after max_delivery_attempts.
resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  labels                     = var.labels
  message_retention_duration = local.week
}

resource "google_pubsub_topic" "schedule" {
  for_each = toset(["prune", "watchdog"])

  project = var.project_id
  name    = "${var.name_prefix}-${each.key}-schedule"
  labels  = var.labels
}

resource "google_pubsub_topic_iam_member" "functions_publish" {
  for_each = {
    events = google_pubsub_topic.events.id
    alerts = google_pubsub_topic.alerts.id
  }

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.functions_service_account_email}"
}

# --- subscriptions ----------------------------------------------------------------

# Keeps every alert for a week, whoever else listens: the inbox the email
# notification points to (gcloud pubsub subscriptions pull).
resource "google_pubsub_subscription" "alerts_inbox" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-alerts-inbox"
  topic                      = google_pubsub_topic.alerts.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = local.week

  expiration_policy {
    ttl = ""
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 10
  }
}

# Every alert pushed to an HTTPS endpoint, body = the alert JSON itself.
resource "google_pubsub_subscription" "alerts_push" {
  count = var.alert_push_endpoint == null ? 0 : 1

  project                    = var.project_id
  name                       = "${var.name_prefix}-alerts-push"
  topic                      = google_pubsub_topic.alerts.id
  labels                     = var.labels
  ack_deadline_seconds       = 30
  message_retention_duration = local.week

  push_config {
    push_endpoint = var.alert_push_endpoint
    no_wrapper {
      write_metadata = false
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 20
  }
}

# A topic without a subscription drops what it receives: this keeps dead
# letters for a week.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  message_retention_duration = local.week

  expiration_policy {
    ttl = ""
  }
}

# Dead lettering is done by Pub/Sub's service agent: it must publish to the
# dead-letter topic and acknowledge on the source subscriptions.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.id
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source" {
  for_each = merge(
    { inbox = google_pubsub_subscription.alerts_inbox.id },
    var.alert_push_endpoint == null ? {} : { push = google_pubsub_subscription.alerts_push[0].id },
  )

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
