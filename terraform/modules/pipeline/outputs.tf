output "events_topic" {
  description = "The events topic (validation outcomes, prune reports), projects/P/topics/T."
  value       = google_pubsub_topic.events.id
}

output "alerts_topic" {
  description = "The alerts topic, projects/P/topics/T."
  value       = google_pubsub_topic.alerts.id
}

output "alerts_inbox_subscription" {
  description = "Pull subscription that keeps every alert for a week."
  value       = google_pubsub_subscription.alerts_inbox.name
}

output "dead_letter_topic" {
  description = "Dead-letter topic of the alert subscriptions."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Subscription that keeps dead letters for a week."
  value       = google_pubsub_subscription.dead_letter.name
}

output "function_names" {
  description = "Deployed function names, by entry point."
  value       = { for key, function in google_cloudfunctions2_function.function : key => function.name }
}

output "sources_bucket_name" {
  description = "Bucket holding the functions' source archives."
  value       = google_storage_bucket.sources.name
}
