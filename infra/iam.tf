# One service account per function, one for Pub/Sub's push identity, one for the function
# builds (and, in their files, one for the Chroma VM, one for the backfill job, and one per
# CI trigger). Roles on a single resource are granted next to that resource (pubsub.tf,
# secrets.tf, chroma.tf, backfill.tf); project-wide ones are here.

resource "google_service_account" "api" {
  account_id   = "${var.name_prefix}-api"
  display_name = "Ticket triage API (HTTP function)"
}

resource "google_service_account" "worker" {
  account_id   = "${var.name_prefix}-worker"
  display_name = "Ticket triage worker (Pub/Sub push)"
}

resource "google_service_account" "push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "Identity Pub/Sub presents (OIDC) when it pushes to the worker"
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "Builds the functions' images from the uploaded source"
}

locals {
  # Where a 2nd gen function build fetches its source from: Cloud Functions copies our zip
  # into this Google-made bucket and the build account downloads it from there
  # (terraform-provider-google #20571: "Access to bucket gcf-v2-sources-<number>-<region>
  # denied"). The bucket only exists after the first deploy, so the grant is a project-level
  # one with a condition naming the bucket, not a grant on the bucket.
  function_sources_bucket = "gcf-v2-sources-${local.project_number}-${var.region}"

  project_roles = merge(
    {
      # Firestore has no per-collection IAM: both functions read and write tickets.
      api_datastore    = { member = google_service_account.api.member, role = "roles/datastore.user", condition = null }
      worker_datastore = { member = google_service_account.worker.member, role = "roles/datastore.user", condition = null }
      # The build writes its log and pushes the function image to Artifact Registry.
      build_logs     = { member = google_service_account.build.member, role = "roles/logging.logWriter", condition = null }
      build_registry = { member = google_service_account.build.member, role = "roles/artifactregistry.writer", condition = null }
      # ... and reads (and caches into) the sources bucket: the provider's own builder example
      # grants roles/storage.objectAdmin; the condition keeps it to that one bucket.
      build_sources = {
        member = google_service_account.build.member
        role   = "roles/storage.objectAdmin"
        condition = {
          title      = "gcf-v2-sources only"
          expression = "resource.name.startsWith(\"projects/_/buckets/${local.function_sources_bucket}\")"
        }
      }
    },
    # Gemini on Vertex AI: the worker calls it with its own identity (ADC), no key.
    var.gemini_backend == "vertex" ? {
      worker_vertex = { member = google_service_account.worker.member, role = "roles/aiplatform.user", condition = null }
    } : {},
  )
}

resource "google_project_iam_member" "role" {
  for_each = local.project_roles

  project = var.project_id
  role    = each.value.role
  member  = each.value.member

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]
    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

# Pub/Sub mints the push subscription's OIDC tokens as the push account (needed in
# projects created before April 2021; harmless after).
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# IAM is eventually consistent: a grant takes effect within about two minutes, sometimes
# more. Without this wait the first function build fails with "Access to bucket
# gcf-v2-sources-... denied" and the first start cannot read its secrets (the provider's
# cloudfunctions2_basic_builder example waits 60s for the same reason). The wait runs again
# whenever the set of grants changes.
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait

  triggers = {
    project_roles  = jsonencode(keys(local.project_roles))
    api_secrets    = jsonencode(keys(google_secret_manager_secret_iam_member.api))
    worker_secrets = jsonencode(keys(google_secret_manager_secret_iam_member.worker))
  }

  depends_on = [
    google_project_iam_member.role,
    google_secret_manager_secret_iam_member.api,
    google_secret_manager_secret_iam_member.worker,
    google_storage_bucket_iam_member.build_reads_source,
    google_pubsub_topic_iam_member.api_publishes,
    google_pubsub_topic_iam_member.worker_publishes,
  ]
}
