output "api_url" {
  description = "Base URL of the API (POST /classify, GET /tickets/{id}, ...)."
  value       = google_cloudfunctions2_function.api.service_config[0].uri
}

output "jira_webhook_url" {
  description = "Paste into Jira: System > WebHooks > URL."
  value       = "${google_cloudfunctions2_function.api.service_config[0].uri}/webhooks/jira"
}

output "servicenow_webhook_url" {
  description = "Paste into the ServiceNow REST Message's endpoint."
  value       = "${google_cloudfunctions2_function.api.service_config[0].uri}/webhooks/servicenow"
}

output "tickets_topic" {
  description = "Topic of classification work (TICKETS_TOPIC)."
  value       = google_pubsub_topic.tickets.name
}

output "writeback_topic" {
  description = "Topic of write-back work (WRITEBACK_TOPIC)."
  value       = google_pubsub_topic.writeback.name
}

output "dead_letter_topic" {
  description = "Where Pub/Sub parks messages it gave up on."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead letters for inspection."
  value       = google_pubsub_subscription.dead_letter_hold.name
}

output "chroma_url" {
  description = "The memory's Chroma server (chroma_mode = cloud_run), or the external host."
  value       = var.chroma_mode == "cloud_run" ? google_cloud_run_v2_service.chroma[0].uri : var.chroma_host
}

output "secret_ids" {
  description = "Secret Manager secrets to give a value (gcloud secrets versions add ID --data-file=-)."
  value       = { for name, secret in google_secret_manager_secret.secret : name => secret.secret_id }
}

output "service_accounts" {
  description = "The service accounts this deployment made."
  value = {
    api    = google_service_account.api.email
    worker = google_service_account.worker.email
    push   = google_service_account.push.email
    build  = google_service_account.build.email
  }
}
