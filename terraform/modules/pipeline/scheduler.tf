# Cloud Scheduler publishes a small message on each scheduled function's
# topic; the function's Pub/Sub trigger delivers it. The body only names the
# job (the functions read their policy from the environment, not the message).

resource "google_cloud_scheduler_job" "schedule" {
  for_each = {
    prune    = var.schedules.prune
    watchdog = var.schedules.watchdog
  }

  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-${each.key}"
  description = "gcwal: runs the ${each.key} function"
  schedule    = each.value
  time_zone   = var.schedule_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.schedule[each.key].id
    data       = base64encode(jsonencode({ job = each.key }))
  }
}
