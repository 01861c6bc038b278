# Continuous deployment with Cloud Build: two triggers on the repository, each running as its
# own user-specified service account, so that what a build may do is decided by the trigger
# (which only an administrator changes), never by cloudbuild.yaml (which a pull request can
# edit). Projects created since mid-2024 would otherwise build as the Compute Engine default
# service account, or the legacy Cloud Build account, depending on organisation policy
# (Cloud Build, "Cloud Build default service account change"); both triggers name theirs.
#
#   plan:  pull requests to deploy_branch. Runs the tests and `terraform plan`, with read-only
#          roles and a read-only view of the state: it can change nothing, whatever the pull
#          request puts in cloudbuild.yaml. _APPLY=false.
#   apply: pushes to deploy_branch. Runs the same and applies the saved plan. _APPLY=true.
#
# The accounts exist whether or not the triggers do (github_owner empty), so that a
# `gcloud builds submit --service-account=...` by hand runs with the same rights.

locals {
  cicd_triggers = var.github_owner != "" && var.github_repository != ""

  # terraform plan reads every resource infra/ declares and their IAM policies; the state
  # and terraform.tfvars it reads from the state bucket (granted below, read-only).
  # roles/viewer also reads Firestore documents: pull requests from outside contributors
  # therefore run only after a maintainer's /gcbrun comment (comment_control below).
  plan_roles = {
    "roles/viewer"               = "read every resource infra/ declares"
    "roles/iam.securityReviewer" = "read the IAM policies on them"
    "roles/logging.logWriter"    = "write the build's own log (CLOUD_LOGGING_ONLY)"
  }

  # terraform apply: manage exactly the kinds of resources infra/ declares, and no more
  # (no Owner, no Editor).
  apply_roles = {
    "roles/serviceusage.serviceUsageAdmin"  = "google_project_service"
    "roles/resourcemanager.projectIamAdmin" = "google_project_iam_member"
    "roles/iam.serviceAccountAdmin"         = "the service accounts and their IAM"
    "roles/iam.serviceAccountUser"          = "deploy functions, the jobs, the VM, schedules and triggers as their accounts"
    "roles/cloudfunctions.admin"            = "the two functions"
    "roles/run.admin"                       = "invoker grants on the functions' services, the backfill and calibration jobs"
    "roles/pubsub.admin"                    = "topics, subscriptions and their IAM"
    "roles/datastore.owner"                 = "the Firestore database, indexes and TTL policy"
    "roles/secretmanager.admin"             = "the secrets (never their values) and their IAM"
    "roles/storage.admin"                   = "buckets, the source zip, bucket IAM, the state"
    "roles/monitoring.editor"               = "alert policies, notification channels, the dashboard"
    "roles/logging.configWriter"            = "log-based metrics"
    "roles/cloudscheduler.admin"            = "the reconcile and calibration schedules"
    "roles/artifactregistry.admin"          = "the image repositories and their IAM; push the backfill image"
    "roles/compute.instanceAdmin.v1"        = "the Chroma VM's template, group, disk and snapshot schedule"
    "roles/compute.networkAdmin"            = "the network, subnet, address and health check"
    "roles/compute.securityAdmin"           = "the firewall rules"
    "roles/vpcaccess.admin"                 = "the Serverless VPC Access connector"
    "roles/cloudbuild.builds.editor"        = "the two triggers"
    "roles/logging.logWriter"               = "write the build's own log (CLOUD_LOGGING_ONLY)"
  }
}

resource "google_service_account" "ci_plan" {
  account_id   = "${var.name_prefix}-ci-plan"
  display_name = "Cloud Build, pull requests: tests and terraform plan (read-only)"
}

resource "google_service_account" "ci_apply" {
  account_id   = "${var.name_prefix}-ci-apply"
  display_name = "Cloud Build, ${var.deploy_branch}: tests, terraform plan and apply"
}

resource "google_project_iam_member" "ci_plan" {
  for_each = local.plan_roles

  project = var.project_id
  role    = each.key
  member  = google_service_account.ci_plan.member
  #checkov:skip=CKV_GCP_117:Viewer is the read-only role that covers every kind of resource terraform plan refreshes; this account can write nothing.
}

resource "google_project_iam_member" "ci_apply" {
  for_each = local.apply_roles

  project = var.project_id
  role    = each.key
  member  = google_service_account.ci_apply.member
  #checkov:skip=CKV_GCP_41:The deploy account deploys the functions, the job and the VM as their own service accounts, which needs Service Account User.
  #checkov:skip=CKV_GCP_49:The deploy account creates the service accounts infra/ declares and the triggers that run as them; only the main-branch trigger runs as it.
}

# The state bucket is made by hand (README, "Deploy"), so only the grants on it live here.
resource "google_storage_bucket_iam_member" "ci_plan_reads_state" {
  count = var.tf_state_bucket != "" ? 1 : 0

  bucket = var.tf_state_bucket
  role   = "roles/storage.objectViewer" # plan runs with -lock=false: it never writes the state
  member = google_service_account.ci_plan.member
}

resource "google_storage_bucket_iam_member" "ci_apply_writes_state" {
  count = var.tf_state_bucket != "" ? 1 : 0

  bucket = var.tf_state_bucket
  role   = "roles/storage.objectUser" # the state, its lock, the saved plan's inputs
  member = google_service_account.ci_apply.member
}

# Builder images come through the Docker Hub cache (registry.tf).
resource "google_artifact_registry_repository_iam_member" "ci_plan_pulls" {
  location   = google_artifact_registry_repository.dockerhub.location
  repository = google_artifact_registry_repository.dockerhub.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.ci_plan.member
}

resource "google_cloudbuild_trigger" "plan" {
  count = local.cicd_triggers ? 1 : 0

  name            = "${var.name_prefix}-plan"
  description     = "Pull requests to ${var.deploy_branch}: tests and terraform plan, nothing applied"
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.ci_plan.id

  github {
    owner = var.github_owner
    name  = var.github_repository
    pull_request {
      branch          = "^${var.deploy_branch}$"
      comment_control = "COMMENTS_ENABLED_FOR_EXTERNAL_CONTRIBUTORS_ONLY"
    }
  }

  substitutions = {
    _APPLY           = "false"
    _MIRROR          = local.dockerhub_mirror
    _REGION          = var.region
    _NAME_PREFIX     = var.name_prefix
    _TF_STATE_BUCKET = var.tf_state_bucket
    _TF_STATE_PREFIX = var.tf_state_prefix
  }

  depends_on = [google_project_iam_member.ci_plan]
}

resource "google_cloudbuild_trigger" "apply" {
  count = local.cicd_triggers ? 1 : 0

  name            = "${var.name_prefix}-apply"
  description     = "Pushes to ${var.deploy_branch}: tests, terraform plan and apply"
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.ci_apply.id

  github {
    owner = var.github_owner
    name  = var.github_repository
    push {
      branch = "^${var.deploy_branch}$"
    }
  }

  substitutions = {
    _APPLY           = "true"
    _MIRROR          = local.dockerhub_mirror
    _REGION          = var.region
    _NAME_PREFIX     = var.name_prefix
    _TF_STATE_BUCKET = var.tf_state_bucket
    _TF_STATE_PREFIX = var.tf_state_prefix
  }

  depends_on = [google_project_iam_member.ci_apply]
}
