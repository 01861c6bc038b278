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
  description = "The memory's Chroma server: the VM's private address (chroma_mode = gce, reachable only through the VPC connector), or the external host."
  value       = var.chroma_mode == "gce" ? "http://${google_compute_address.chroma[0].address}:${local.chroma_proxy_port}" : var.chroma_host
}

output "history_bucket" {
  description = "Upload the history file here for the backfill job (gcloud storage cp history.csv gs://BUCKET/)."
  value       = google_storage_bucket.history.name
}

output "backfill_job" {
  description = "The sharded backfill job (gcloud run jobs execute NAME --region REGION --wait); empty until a build has pushed its image."
  value       = local.backfill ? google_cloud_run_v2_job.backfill[0].name : ""
}

output "images_repository" {
  description = "Artifact Registry repository of the images this repository builds (the backfill job)."
  value       = local.images_registry
}

output "dockerhub_mirror" {
  description = "Artifact Registry pull-through cache of Docker Hub; cloudbuild.yaml's _MIRROR."
  value       = local.dockerhub_mirror
}

output "dashboard" {
  description = "The Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.triage.id), length(split("/", google_monitoring_dashboard.triage.id)) - 1)}?project=${var.project_id}"
}

output "secret_ids" {
  description = "Secret Manager secrets to give a value (gcloud secrets versions add ID --data-file=-)."
  value       = { for name, secret in google_secret_manager_secret.secret : name => secret.secret_id }
}

output "service_accounts" {
  description = "The service accounts this deployment made."
  value = {
    api      = google_service_account.api.email
    worker   = google_service_account.worker.email
    push     = google_service_account.push.email
    build    = google_service_account.build.email
    backfill = google_service_account.backfill.email
    chroma   = var.chroma_mode == "gce" ? google_service_account.chroma[0].email : ""
    ci_plan  = google_service_account.ci_plan.email
    ci_apply = google_service_account.ci_apply.email
  }
}

output "calibrate_job" {
  description = "The scheduled calibration job (gcloud run jobs execute NAME --region REGION --wait); empty without backfill_image or calibrate_schedule."
  value       = local.calibrate ? google_cloud_run_v2_job.calibrate[0].name : ""
}
