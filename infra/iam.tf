# One service account per function, one for Pub/Sub's push identity, one for the
# function builds and one for the Chroma service. Roles on a single resource are granted
# next to that resource (pubsub.tf, secrets.tf, chroma.tf); project-wide ones are here.

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
  project_roles = {
    # Firestore has no per-collection IAM: both functions read and write tickets.
    api_datastore    = { member = google_service_account.api.member, role = "roles/datastore.user" }
    worker_datastore = { member = google_service_account.worker.member, role = "roles/datastore.user" }
    # The build writes its log and pushes the function image to Artifact Registry.
    build_logs     = { member = google_service_account.build.member, role = "roles/logging.logWriter" }
    build_registry = { member = google_service_account.build.member, role = "roles/artifactregistry.writer" }
  }
}

resource "google_project_iam_member" "role" {
  for_each = local.project_roles

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

# Pub/Sub mints the push subscription's OIDC tokens as the push account (needed in
# projects created before April 2021; harmless after).
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
