# Secret Manager holds every credential; the functions read them as secret environment
# variables (never plain ones). Terraform makes the secret, not its value: add the value with
#   printf %s "$VALUE" | gcloud secrets versions add triage-api-keys --data-file=-
# so it never lands in the Terraform state (README, "Deploy").
#
# Versions: a secret environment variable is resolved when an instance starts, so with
# "latest" a new value reaches only instances started after it, while old ones keep the old
# value for as long as they live, and a listed secret with no version yet fails the deploy.
# var.secret_versions pins each secret to a version number: rotating is then "add a version,
# set its number, apply", which rolls a new revision of every reader at once (README,
# "Deploy", rotating a secret). A secret not pinned there reads "latest" (first deploy only).

locals {
  # Which function reads which secret: the SecretStr settings of functions/triage/config.py.
  api_secrets = [
    "API_KEYS",                    # API keys and their scopes
    "CHROMA_TOKEN",                # feedback updates the memory
    "JIRA_WEBHOOK_SECRET",         # X-Hub-Signature of Jira webhooks
    "SERVICENOW_WEBHOOK_PASSWORD", # Basic auth of the ServiceNow Business Rule
    "SERVICENOW_WEBHOOK_TOKEN",    # or its bearer token
    "SERVICENOW_WEBHOOK_SECRET",   # or its HMAC secret
    # Write-back of a human correction is planned where the feedback arrives (the API), and
    # that plan needs the source's credentials to be configured (config.py refuses
    # JIRA_WRITEBACK without JIRA_API_TOKEN).
    "JIRA_API_TOKEN",
    "SERVICENOW_PASSWORD",
  ]
  worker_secrets = [
    "GEMINI_API_KEY",      # the LLM classifier (gemini_backend = "api" only)
    "CHROMA_TOKEN",        # the memory
    "JIRA_API_TOKEN",      # write-back to Jira
    "SERVICENOW_PASSWORD", # write-back to ServiceNow
  ]
  secret_ids = { for name in var.secrets : name => "${var.name_prefix}-${lower(replace(name, "_", "-"))}" }
  # The version every reader (functions, the backfill job, the Chroma VM) uses.
  secret_version = { for name in var.secrets : name => lookup(var.secret_versions, name, "latest") }
}

resource "google_secret_manager_secret" "secret" {
  for_each = var.secrets

  secret_id = local.secret_ids[each.key]
  labels    = local.labels

  replication {
    auto {}
  }

  lifecycle {
    precondition {
      condition     = !(each.key == "GEMINI_API_KEY" && var.gemini_backend == "vertex")
      error_message = "gemini_backend = \"vertex\" calls Gemini with the worker's service account: remove GEMINI_API_KEY from var.secrets (or set gemini_backend = \"api\")."
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "api" {
  for_each = toset([for name in local.api_secrets : name if contains(var.secrets, name)])

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor" # read its own secrets at start-up, nothing else
  member    = google_service_account.api.member
}

resource "google_secret_manager_secret_iam_member" "worker" {
  for_each = toset([for name in local.worker_secrets : name if contains(var.secrets, name)])

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor" # read its own secrets at start-up, nothing else
  member    = google_service_account.worker.member
}
