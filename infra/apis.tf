# Every API the deployment touches. Disabling them on destroy would break anything
# else in the project that uses them, so destroy leaves them on.
locals {
  apis = toset([
    "artifactregistry.googleapis.com", # images the function builds produce
    "cloudbuild.googleapis.com",       # Cloud Functions build the source with Cloud Build
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com", # the stuck-ticket reconciler
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com", # 2nd gen functions and the Chroma service run on Cloud Run
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "api" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
