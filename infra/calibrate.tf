# The scheduled refit of the calibrated decision (README, "The precision promise"):
# a Cloud Run job on the backfill image runs
#   triage calibrate --from-memory --all-tenants --taxonomy
# which fits every tenant's per-category bars on what its memory holds (the classifier's and
# the reviewers' labels; answers given from memory are left out) and stores them in Firestore,
# where the worker reads them. A tenant with too little history yet is skipped. Cloud Scheduler
# starts the job through the Cloud Run Admin API as its own invoker account.
#
# Run it now:  gcloud run jobs execute $(terraform output -raw calibrate_job) --region $REGION --wait

locals {
  calibrate = local.backfill && var.calibrate_schedule != ""
  # It reads the memory's record in Firestore and writes where the worker reads its calibrations;
  # it embeds with the ONNX export, as the worker; it never talks to Chroma.
  calibrate_env = merge(var.settings, {
    GOOGLE_CLOUD_PROJECT   = var.project_id
    MEMORY_COLLECTION      = local.memory_collection
    CALIBRATION_COLLECTION = local.calibration_collection
    HF_HUB_OFFLINE         = "1"
    LOG_LEVEL              = "INFO"
    EMBEDDING_BACKEND      = "onnx"
  })
}

resource "google_service_account" "calibrate_invoker" {
  count = local.calibrate ? 1 : 0

  account_id   = "${var.name_prefix}-refit" # 30 characters at most with the longest prefix
  display_name = "Starts the scheduled calibration job (Cloud Scheduler)"
}

resource "google_cloud_run_v2_job" "calibrate" {
  count = local.calibrate ? 1 : 0

  name                = "${var.name_prefix}-calibrate"
  location            = var.region
  labels              = local.labels
  deletion_protection = false # holds no data: it reads the memory's record and writes calibrations

  template {
    task_count = 1
    labels     = local.labels

    template {
      # The backfill job's account: it reads the memory's record in Firestore and writes there.
      service_account = google_service_account.backfill.email
      timeout         = var.calibrate_task_timeout
      max_retries     = 1 # a rerun fits the same history again and stores the same bars

      containers {
        image   = var.backfill_image
        command = ["triage"]
        args    = ["calibrate", "--from-memory", "--all-tenants", "--taxonomy"]

        dynamic "env" {
          for_each = local.calibrate_env
          content {
            name  = env.key
            value = env.value
          }
        }

        resources {
          limits = {
            cpu    = "2"
            memory = "4Gi" # the embedding model (ONNX Runtime) and one tenant's history with its vectors
          }
        }
      }
    }
  }

  depends_on = [google_project_service.api, google_project_iam_member.backfill_datastore]
}

resource "google_cloud_run_v2_job_iam_member" "calibrate_invoker" {
  count = local.calibrate ? 1 : 0

  name     = google_cloud_run_v2_job.calibrate[0].name
  location = google_cloud_run_v2_job.calibrate[0].location
  role     = "roles/run.invoker" # run.jobs.run on this job alone
  member   = google_service_account.calibrate_invoker[0].member
}

resource "google_cloud_scheduler_job" "calibrate" {
  count = local.calibrate ? 1 : 0

  name        = "${var.name_prefix}-calibrate"
  region      = var.region
  description = "Refit every tenant's calibrated decision on its memory (Cloud Run job ${var.name_prefix}-calibrate)"
  schedule    = var.calibrate_schedule
  time_zone   = var.time_zone
  # Only the Admin API call that starts an execution; the job runs on without it.
  attempt_deadline = "60s"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.calibrate[0].name}:run"

    oauth_token {
      service_account_email = google_service_account.calibrate_invoker[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  retry_config {
    retry_count = 1
  }

  depends_on = [google_project_service.api, google_cloud_run_v2_job_iam_member.calibrate_invoker]
}
