# Every API the deployment touches. Disabling them on destroy would break anything
# else in the project that uses them, so destroy leaves them on.
#
# Two of them must already be on before the very first `terraform plan` (README, "Deploy",
# step 1): cloudresourcemanager (data.google_project reads the project number at plan time)
# and serviceusage (google_project_service itself). They are listed here too, so that they
# stay on.
locals {
  apis = toset(concat(
    [
      "artifactregistry.googleapis.com", # images the function builds and the backfill build push; the Docker Hub mirror
      "cloudbuild.googleapis.com",       # Cloud Functions build the source with Cloud Build; the CI triggers
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com", # data.google_project, project IAM
      "cloudscheduler.googleapis.com",       # the stuck-ticket reconciler
      "firestore.googleapis.com",
      "iam.googleapis.com",
      # Impersonation: Terraform run by hand as the apply account (GOOGLE_IMPERSONATE_SERVICE_ACCOUNT,
      # README "Deploy") mints that account's short-lived tokens through this API.
      "iamcredentials.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com", # 2nd gen functions and the backfill job run on Cloud Run
      "secretmanager.googleapis.com",
      "serviceusage.googleapis.com",
      "storage.googleapis.com",
    ],
    # Gemini on Vertex AI with the worker's service account (no API key).
    var.gemini_backend == "vertex" ? ["aiplatform.googleapis.com"] : [],
    # Chroma on Compute Engine, reached through a Serverless VPC Access connector.
    var.chroma_mode == "gce" ? ["compute.googleapis.com", "vpcaccess.googleapis.com"] : [],
  ))
}

resource "google_project_service" "api" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
