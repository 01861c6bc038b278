# Secret Manager holds every credential; the functions read them as secret environment
# variables (never plain ones). Terraform makes the secret, not its value: add the value with
#   printf %s "$VALUE" | gcloud secrets versions add triage-gemini-api-key --data-file=-
# so it never lands in the Terraform state (README, "Deploy").

locals {
  # Which function reads which secret: the SecretStr settings of functions/triage/config.py.
  api_secrets = [
    "API_KEYS",                    # API keys and their scopes
    "CHROMA_TOKEN",                # feedback updates the memory
    "JIRA_WEBHOOK_SECRET",         # X-Hub-Signature of Jira webhooks
    "SERVICENOW_WEBHOOK_PASSWORD", # Basic auth of the ServiceNow Business Rule
    "SERVICENOW_WEBHOOK_TOKEN",    # or its bearer token
    "SERVICENOW_WEBHOOK_SECRET",   # or its HMAC secret
  ]
  worker_secrets = [
    "GEMINI_API_KEY",      # the LLM classifier
    "CHROMA_TOKEN",        # the memory
    "JIRA_API_TOKEN",      # write-back to Jira
    "SERVICENOW_PASSWORD", # write-back to ServiceNow
  ]
  secret_ids = { for name in var.secrets : name => "${var.name_prefix}-${lower(replace(name, "_", "-"))}" }
}

resource "google_secret_manager_secret" "secret" {
  for_each = var.secrets

  secret_id = local.secret_ids[each.key]
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "api" {
  for_each = toset([for name in local.api_secrets : name if contains(var.secrets, name)])

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor" # read its own secrets at start-up, nothing else
  member    = "serviceAccount:${google_service_account.api.email}"
}

resource "google_secret_manager_secret_iam_member" "worker" {
  for_each = toset([for name in local.worker_secrets : name if contains(var.secrets, name)])

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor" # read its own secrets at start-up, nothing else
  member    = "serviceAccount:${google_service_account.worker.email}"
}
