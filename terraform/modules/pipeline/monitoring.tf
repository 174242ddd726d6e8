# Email through Cloud Monitoring: an alert policy on the alerts topic's
# publish count notifies the addresses whenever the functions publish an
# alert or a resolution. The notification says where to read the message
# (the inbox subscription), not what it says: Monitoring sees a count only.

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_email_addresses)

  project      = var.project_id
  display_name = "gcwal alerts (${var.name_prefix}): ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_alert_policy" "alert_published" {
  count = length(var.alert_email_addresses) == 0 ? 0 : 1

  project      = var.project_id
  display_name = "gcwal (${var.name_prefix}): alert published"
  combiner     = "OR"

  conditions {
    display_name = "a message was published on ${google_pubsub_topic.alerts.name}"
    condition_threshold {
      filter          = "resource.type = \"pubsub_topic\" AND resource.labels.topic_id = \"${google_pubsub_topic.alerts.name}\" AND metric.type = \"pubsub.googleapis.com/topic/send_message_operation_count\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      gcwal published an alert (or the resolution of one) on `${google_pubsub_topic.alerts.id}`.

      Read it:

          gcloud pubsub subscriptions pull ${google_pubsub_subscription.alerts_inbox.name} --project=${var.project_id} --auto-ack --limit=20

      Each message is JSON: severity, cluster (system identifier), kind, summary, details.
      `gcwal status` on a database host shows the open alerts and the recoverable window.
    EOT
  }

  notification_channels = [for channel in google_monitoring_notification_channel.email : channel.name]
  user_labels           = var.labels
}
