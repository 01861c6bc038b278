variable "project_id" {
  type        = string
  description = "The Google Cloud project to deploy into."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lower-case letters, digits and hyphens), not a name or number."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, Pub/Sub push endpoints, the Chroma service and the scheduler."
  default     = "europe-west1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Cloud region such as europe-west1."
  }
}

variable "firestore_location" {
  type        = string
  description = "Firestore location: a multi-region (eur3, nam5) or a region. Cannot be changed after creation."
  default     = "eur3"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, so several deployments can share a project."
  default     = "triage"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix must be 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every resource (added to app and managed-by)."
  default     = {}
}

variable "python_runtime" {
  type        = string
  description = "Cloud Functions runtime; requirements.txt is locked for Python 3.11."
  default     = "python311"
  validation {
    condition     = contains(["python311", "python312"], var.python_runtime)
    error_message = "python_runtime must be python311 or python312."
  }
}

variable "api_max_instances" {
  type        = number
  description = "Most API instances. Each holds up to api_concurrency requests."
  default     = 20
  validation {
    condition     = var.api_max_instances >= 1
    error_message = "api_max_instances must be at least 1."
  }
}

variable "api_min_instances" {
  type        = number
  description = "API instances kept warm (0 = scale to zero; the API's cold start is an import of under a second)."
  default     = 0
}

variable "api_concurrency" {
  type        = number
  description = "Concurrent requests per API instance (README, Capacity model: one vCPU is busy at about 10 in flight, 175 requests/s x 60 ms; 16 leaves room for slower Firestore answers without queueing inside the instance). Also the number of gunicorn threads (THREADS), so the instance really serves that many at once."
  default     = 16
  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 1000
    error_message = "api_concurrency must be between 1 and 1000."
  }
}

variable "worker_memory" {
  type        = string
  description = "Worker memory. The embedding model, torch and the local classifier need about 0.5 GiB resident; 2Gi leaves room for batches."
  default     = "2Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.worker_memory))
    error_message = "worker_memory must be a size such as 2Gi or 1536Mi."
  }
}

variable "worker_cpu" {
  type        = string
  description = "Worker vCPUs. Embedding is CPU-bound: raise it with worker_concurrency."
  default     = "1"
}

variable "worker_concurrency" {
  type        = number
  description = "Messages one worker instance handles at once (they share the model). The memory path is CPU-bound and the LLM path waits on Gemini, so 8 keeps the vCPU busy while calls are out (README, Capacity model). Also the number of gunicorn threads (THREADS)."
  default     = 8
  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 80
    error_message = "worker_concurrency must be between 1 and 80."
  }
}

variable "worker_min_instances" {
  type        = number
  description = "Worker instances kept warm. 1 removes the model-loading cold start (see README) at the price of an idle instance."
  default     = 0
}

variable "worker_max_instances" {
  type        = number
  description = "Most worker instances: bounds the spend and the load on Gemini and Chroma."
  default     = 10
  validation {
    condition     = var.worker_max_instances >= 1
    error_message = "worker_max_instances must be at least 1."
  }
}

variable "worker_timeout_seconds" {
  type        = number
  description = "Longest a worker may spend on one message; also the subscription's ack deadline."
  default     = 300
  validation {
    condition     = var.worker_timeout_seconds >= 10 && var.worker_timeout_seconds <= 600
    error_message = "worker_timeout_seconds must be 10-600 (Pub/Sub's longest ack deadline)."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Real attempts the worker makes before a ticket is Failed (MAX_DELIVERY_ATTEMPTS, counted on the ticket). Pub/Sub's own dead-letter count is sized from it and from the burst the deployment must absorb (pubsub.tf)."
  default     = 5
  validation {
    condition     = var.max_delivery_attempts >= 3 && var.max_delivery_attempts <= 50
    error_message = "max_delivery_attempts must be 3-50 (Pub/Sub allows at most 100 deliveries, which also cover the refusals of a burst)."
  }
}

variable "worker_tickets_per_second" {
  type        = number
  description = "Tickets one worker instance classifies per second, as measured (make bench: 11.6 and 14.3/s on the memory path in two runs, 64 to 79 ms of worker CPU per ticket, 1 vCPU). Sizes the dead-letter budget; do not raise it above what you measured."
  default     = 11
  validation {
    condition     = var.worker_tickets_per_second > 0 && var.worker_tickets_per_second <= 1000
    error_message = "worker_tickets_per_second must be a measured rate between 0 and 1000."
  }
}

variable "burst_tickets" {
  type        = number
  description = "Largest burst of tickets that must drain without Pub/Sub dead-lettering a message merely because the worker was at worker_max_instances and refused its pushes (pubsub.tf shows the arithmetic)."
  default     = 1000000
  validation {
    condition     = var.burst_tickets >= 1
    error_message = "burst_tickets must be at least 1."
  }
}

variable "secrets" {
  type        = set(string)
  description = "Secrets this deployment uses. Terraform creates each in Secret Manager and wires it as a secret environment variable; add its value with gcloud (README) before the functions are deployed."
  default     = ["API_KEYS", "CHROMA_TOKEN"]
  validation {
    condition = alltrue([for name in var.secrets : contains([
      "API_KEYS", "GEMINI_API_KEY", "CHROMA_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_API_TOKEN",
      "SERVICENOW_WEBHOOK_PASSWORD", "SERVICENOW_WEBHOOK_TOKEN", "SERVICENOW_WEBHOOK_SECRET", "SERVICENOW_PASSWORD",
    ], name)])
    error_message = "secrets may only name API_KEYS, GEMINI_API_KEY, CHROMA_TOKEN, JIRA_WEBHOOK_SECRET, JIRA_API_TOKEN, SERVICENOW_WEBHOOK_PASSWORD, SERVICENOW_WEBHOOK_TOKEN, SERVICENOW_WEBHOOK_SECRET or SERVICENOW_PASSWORD."
  }
}

variable "secret_versions" {
  type        = map(string)
  description = "The Secret Manager version number each secret is pinned to, e.g. { API_KEYS = \"3\" }. Rotating a secret is: add a version, set its number here, apply (a new revision of every reader). A secret left out reads \"latest\", which an instance resolves only when it starts: fine for the first deploy, not for rotation."
  default     = {}
  validation {
    condition     = alltrue([for name, version in var.secret_versions : can(regex("^[1-9][0-9]*$", version))])
    error_message = "secret_versions values are version numbers such as \"1\" (never \"latest\": leave the secret out instead)."
  }
}

variable "settings" {
  type        = map(string)
  description = "Other configuration for both functions and the backfill job, by environment variable (README, Configuration): e.g. GEMINI_MODEL, REDACT, RATE_LIMIT_PER_MINUTE, JIRA_TENANT, JIRA_WRITEBACK_FIELDS. Never a secret: those go in var.secrets."
  default     = {}
  validation {
    condition = alltrue([for key in keys(var.settings) : can(regex("^[A-Z][A-Z0-9_]*$", key)) && !contains([
      "API_KEYS", "GEMINI_API_KEY", "CHROMA_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_API_TOKEN",
      "SERVICENOW_WEBHOOK_PASSWORD", "SERVICENOW_WEBHOOK_TOKEN", "SERVICENOW_WEBHOOK_SECRET", "SERVICENOW_PASSWORD",
    ], key)])
    error_message = "settings keys are upper-case environment variable names, and never a secret (put those in var.secrets)."
  }
}

variable "worker_settings" {
  type        = map(string)
  description = "Configuration for the worker only, by environment variable (e.g. CLASSIFIER_FALLBACK, GEMINI_THINKING_LEVEL). Write-back is configured with the jira_* and servicenow_* variables, which both functions receive."
  default     = {}
  validation {
    condition = alltrue([for key in keys(var.worker_settings) : can(regex("^[A-Z][A-Z0-9_]*$", key)) && !contains([
      "JIRA_WRITEBACK", "JIRA_BASE_URL", "JIRA_USER_EMAIL", "SERVICENOW_WRITEBACK", "SERVICENOW_INSTANCE_URL", "SERVICENOW_USER",
    ], key)])
    error_message = "worker_settings keys are upper-case environment variable names; write-back settings go in the jira_* and servicenow_* variables, so that the API (which queues a correction's write-back) has them too."
  }
}

# Write-back. Both functions need these: the worker writes a classification back, and the API
# queues the write-back of a human correction (POST /tickets/{id}/feedback).
variable "jira_writeback" {
  type        = string
  description = "Jira write-back (JIRA_WRITEBACK): off, dry_run (log what would be written) or on. dry_run and on need jira_base_url, jira_user_email and JIRA_API_TOKEN in var.secrets."
  default     = "off"
  validation {
    condition     = contains(["off", "dry_run", "on"], var.jira_writeback)
    error_message = "jira_writeback must be off, dry_run or on."
  }
}

variable "jira_base_url" {
  type        = string
  description = "Jira Cloud site (JIRA_BASE_URL), e.g. https://example.atlassian.net."
  default     = ""
  validation {
    condition     = var.jira_base_url == "" || can(regex("^https://[^/]+$", var.jira_base_url))
    error_message = "jira_base_url must be an https:// site address without a path, or empty."
  }
}

variable "jira_user_email" {
  type        = string
  description = "The Jira account the API token belongs to (JIRA_USER_EMAIL)."
  default     = ""
}

variable "servicenow_writeback" {
  type        = string
  description = "ServiceNow write-back (SERVICENOW_WRITEBACK): off, dry_run or on. dry_run and on need servicenow_instance_url, servicenow_user and SERVICENOW_PASSWORD in var.secrets."
  default     = "off"
  validation {
    condition     = contains(["off", "dry_run", "on"], var.servicenow_writeback)
    error_message = "servicenow_writeback must be off, dry_run or on."
  }
}

variable "servicenow_instance_url" {
  type        = string
  description = "ServiceNow instance (SERVICENOW_INSTANCE_URL), e.g. https://example.service-now.com."
  default     = ""
  validation {
    condition     = var.servicenow_instance_url == "" || can(regex("^https://[^/]+$", var.servicenow_instance_url))
    error_message = "servicenow_instance_url must be an https:// address without a path, or empty."
  }
}

variable "servicenow_user" {
  type        = string
  description = "The ServiceNow user the password belongs to (SERVICENOW_USER)."
  default     = ""
}

# The classifier of record.
variable "gemini_backend" {
  type        = string
  description = "vertex: Gemini on Vertex AI with the worker's service account (roles/aiplatform.user, no key; the default). api: the Gemini API with GEMINI_API_KEY from var.secrets."
  default     = "vertex"
  validation {
    condition     = contains(["vertex", "api"], var.gemini_backend)
    error_message = "gemini_backend must be vertex or api."
  }
}

variable "gemini_location" {
  type        = string
  description = "Vertex AI location of the Gemini endpoint (GEMINI_LOCATION): global, or a region where the model is offered."
  default     = "global"
  validation {
    condition     = var.gemini_location == "global" || can(regex("^[a-z]+-[a-z]+[0-9]$", var.gemini_location))
    error_message = "gemini_location must be global or a region such as europe-west1."
  }
}

# The memory's decision (worker).
variable "memory_target_precision" {
  type        = number
  description = "Precision the memory must keep for its answers to stand without the classifier (MEMORY_TARGET_PRECISION)."
  default     = 0.97
  validation {
    condition     = var.memory_target_precision >= 0.5 && var.memory_target_precision < 1
    error_message = "memory_target_precision must be at least 0.5 and below 1."
  }
}

variable "memory_audit_rate" {
  type        = number
  description = "Share of memory answers re-classified in the background to keep measuring the memory's precision (MEMORY_AUDIT_RATE; audits go through the tickets topic)."
  default     = 0.05
  validation {
    condition     = var.memory_audit_rate >= 0 && var.memory_audit_rate <= 1
    error_message = "memory_audit_rate must be between 0 and 1."
  }
}

variable "chroma_mode" {
  type        = string
  description = "gce: run the pinned Chroma server on Compute Engine with its data on a persistent disk (snapshots, no external IP, token auth, reached over a Serverless VPC Access connector). external: use an existing Chroma (Chroma Cloud, or your own server) at chroma_host with CHROMA_TOKEN."
  default     = "gce"
  validation {
    condition     = contains(["gce", "external"], var.chroma_mode)
    error_message = "chroma_mode must be gce or external (the Cloud Run mode with a Cloud Storage FUSE volume was removed: README, \"Deploy\", explains why)."
  }
}

variable "chroma_image" {
  type        = string
  description = "Chroma server image (Docker Hub name) for chroma_mode = gce, pulled through the project's Artifact Registry mirror; pinned to the server version the tests run (emulators/requirements-chroma.txt)."
  default     = "chromadb/chroma:1.5.9"
  validation {
    condition     = can(regex(":[0-9]+\\.[0-9]+\\.[0-9]+$", var.chroma_image)) || can(regex("@sha256:[0-9a-f]{64}$", var.chroma_image))
    error_message = "chroma_image must be pinned to a version tag or a digest, never latest."
  }
}

variable "chroma_proxy_image" {
  type        = string
  description = "The reverse proxy in front of Chroma on the VM (Docker Hub name). It checks the x-chroma-token header the Python client sends, because the Chroma 1.x server has no auth of its own."
  default     = "nginx:1.27.3-alpine"
  validation {
    condition     = can(regex(":[0-9]+\\.[0-9]+\\.[0-9]+(-[a-z0-9.]+)?$", var.chroma_proxy_image))
    error_message = "chroma_proxy_image must be pinned to a version tag, never latest."
  }
}

variable "chroma_machine_type" {
  type        = string
  description = "Machine type of the Chroma VM. Chroma keeps the HNSW index in memory: 100,000 384-dimension entries are about 0.2 GB of vectors; e2-standard-2 (8 GB) leaves room for millions."
  default     = "e2-standard-2"
}

variable "chroma_zone" {
  type        = string
  description = "Zone of the Chroma VM and its disk (a persistent disk is zonal); empty means <region>-b."
  default     = ""
  validation {
    condition     = var.chroma_zone == "" || can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.chroma_zone))
    error_message = "chroma_zone must be a zone such as europe-west1-b, or empty."
  }
}

variable "chroma_disk_size_gb" {
  type        = number
  description = "Size of Chroma's persistent disk (SQLite and index files)."
  default     = 50
  validation {
    condition     = var.chroma_disk_size_gb >= 10 && var.chroma_disk_size_gb <= 65536
    error_message = "chroma_disk_size_gb must be 10-65536."
  }
}

variable "chroma_snapshot_retention_days" {
  type        = number
  description = "Days the daily snapshots of Chroma's disk are kept; they are kept after the disk is deleted too."
  default     = 14
  validation {
    condition     = var.chroma_snapshot_retention_days >= 1
    error_message = "chroma_snapshot_retention_days must be at least 1."
  }
}

variable "chroma_snapshot_start_time" {
  type        = string
  description = "UTC hour the daily snapshot of Chroma's disk starts (HH:00)."
  default     = "03:00"
  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):00$", var.chroma_snapshot_start_time))
    error_message = "chroma_snapshot_start_time must be a whole UTC hour such as 03:00."
  }
}

variable "chroma_subnet_cidr" {
  type        = string
  description = "Range of the subnet the Chroma VM lives in (chroma_mode = gce)."
  default     = "10.20.0.0/24"
  validation {
    condition     = can(cidrhost(var.chroma_subnet_cidr, 0))
    error_message = "chroma_subnet_cidr must be a CIDR range."
  }
}

variable "vpc_connector_cidr" {
  type        = string
  description = "The /28 the Serverless VPC Access connector takes; the functions' and the backfill job's traffic to Chroma comes from it, and the firewall admits only it."
  default     = "10.20.1.0/28"
  validation {
    condition     = can(cidrhost(var.vpc_connector_cidr, 0)) && endswith(var.vpc_connector_cidr, "/28")
    error_message = "vpc_connector_cidr must be a /28 range (what Serverless VPC Access requires)."
  }
}

variable "chroma_host" {
  type        = string
  description = "Host of an existing Chroma server (chroma_mode = external), e.g. api.trychroma.com."
  default     = ""
}

variable "chroma_port" {
  type        = number
  description = "Port of the existing Chroma server (chroma_mode = external)."
  default     = 443
}

variable "chroma_tenant" {
  type        = string
  description = "Chroma tenant (Chroma Cloud gives one per account); default_tenant for a self-hosted server."
  default     = "default_tenant"
}

variable "chroma_database" {
  type        = string
  description = "Chroma database; default_database for a self-hosted server."
  default     = "default_database"
}

# The sharded backfill job (backfill.tf).
variable "backfill_image" {
  type        = string
  description = "Image of the backfill job, built by Cloud Build from infra/backfill/Dockerfile (cloudbuild.yaml passes it). Empty: no job yet (the first deploy, before a build has pushed one)."
  default     = ""
  validation {
    condition     = var.backfill_image == "" || can(regex("^[a-z0-9.-]+-docker\\.pkg\\.dev/.+:[A-Za-z0-9._-]+$", var.backfill_image)) || can(regex("@sha256:[0-9a-f]{64}$", var.backfill_image))
    error_message = "backfill_image must be an Artifact Registry image with a tag or digest (REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG), or empty."
  }
}

variable "backfill_object" {
  type        = string
  description = "The history file in the history bucket the job loads (CSV with a header row, or JSON Lines); the job reads it at /history/<object>."
  default     = "history.csv"
  validation {
    condition     = length(var.backfill_object) > 0 && !startswith(var.backfill_object, "/")
    error_message = "backfill_object must be an object name inside the history bucket, without a leading slash."
  }
}

variable "backfill_title_column" {
  type        = string
  description = "Column of the ticket's title (or whole text) in the history file (--title-column)."
  default     = "title"
}

variable "backfill_category_column" {
  type        = string
  description = "Column of the category in the history file (--category-column); the labels must be in the taxonomy."
  default     = "category"
}

variable "backfill_extra_args" {
  type        = list(string)
  description = "Further arguments of `triage backfill`, e.g. [\"--description-column\", \"description\", \"--tenant\", \"acme\"]."
  default     = []
}

variable "backfill_tasks" {
  type        = number
  description = "Shards of the backfill: the job runs this many tasks, each loading its own share of the rows (--shard auto reads CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT)."
  default     = 8
  validation {
    condition     = var.backfill_tasks >= 1 && var.backfill_tasks <= 10000
    error_message = "backfill_tasks must be 1-10000 (Cloud Run's limit)."
  }
}

variable "backfill_parallelism" {
  type        = number
  description = "Tasks running at once. Each embeds on its own CPU, so the limit is what Chroma and Firestore accept, not the job."
  default     = 4
  validation {
    condition     = var.backfill_parallelism >= 1 && var.backfill_parallelism <= 100
    error_message = "backfill_parallelism must be 1-100."
  }
}

variable "backfill_task_timeout" {
  type        = string
  description = "Longest one backfill task may run (a shard of a large history takes a while: about 110 texts/s per vCPU measured)."
  default     = "21600s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.backfill_task_timeout))
    error_message = "backfill_task_timeout must be seconds such as 21600s."
  }
}
# The scheduled refit of the calibrated decision (calibrate.tf).
variable "calibrate_schedule" {
  type        = string
  description = "Cron schedule of the calibration job (triage calibrate --from-memory --all-tenants), which refits each tenant's per-category bars on its memory. Empty: no schedule (run the job by hand). Needs backfill_image: the job runs on that image."
  default     = "0 3 * * *"
}

variable "calibrate_task_timeout" {
  type        = string
  description = "Longest the calibration job may run (it replays every tenant's memory; about 110 texts/s per vCPU to embed, then the fit)."
  default     = "3600s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.calibrate_task_timeout))
    error_message = "calibrate_task_timeout must be seconds such as 3600s."
  }
}

variable "reconcile_schedule" {
  type        = string
  description = "Cron schedule of the stuck-ticket reconciler (Cloud Scheduler publishes a reconcile message)."
  default     = "*/5 * * * *"
}

variable "time_zone" {
  type        = string
  description = "Time zone of reconcile_schedule."
  default     = "Etc/UTC"
}

variable "alert_email" {
  type        = string
  description = "E-mail address alerts go to; empty to use only notification_channels."
  default     = ""
  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an e-mail address or empty."
  }
}

variable "notification_channels" {
  type        = list(string)
  description = "Existing Cloud Monitoring notification channel IDs for the alerts."
  default     = []
}

variable "alert_oldest_unacked_seconds" {
  type        = number
  description = "Alert when the oldest unacknowledged ticket message is older than this."
  default     = 900
}

variable "alert_5xx_per_second" {
  type        = number
  description = "Alert when either function answers more 5xx per second than this, over 5 minutes."
  default     = 0.1
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the Firestore database, Chroma's disk and the history bucket from terraform destroy."
  default     = true
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) to encrypt the Pub/Sub topics with; null keeps Google-managed encryption. Grant the Pub/Sub service agent roles/cloudkms.cryptoKeyEncrypterDecrypter on it first."
  default     = null
}

# The waits a first apply needs (README, "Deploy").
variable "iam_propagation_wait" {
  type        = string
  description = "How long to wait after granting roles before building and starting the functions: IAM grants take effect within about two minutes."
  default     = "120s"
  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.iam_propagation_wait))
    error_message = "iam_propagation_wait must be a duration such as 120s or 2m."
  }
}

variable "log_metric_wait" {
  type        = string
  description = "How long to wait after creating a log-based metric before creating an alert on it: Cloud Monitoring answers 404 for up to 10 minutes (terraform-provider-google #11102). It runs beside the function builds, so it adds little to a first apply."
  default     = "600s"
  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.log_metric_wait))
    error_message = "log_metric_wait must be a duration such as 600s or 10m."
  }
}

# Continuous deployment (cicd.tf): two Cloud Build triggers, each with its own service account.
variable "github_owner" {
  type        = string
  description = "Owner of the GitHub repository connected to Cloud Build (the Cloud Build GitHub app, installed once in the console). Empty: no triggers, only the two accounts."
  default     = ""
}

variable "github_repository" {
  type        = string
  description = "Name of that GitHub repository."
  default     = ""
}

variable "deploy_branch" {
  type        = string
  description = "The branch whose pushes are applied; pull requests to it are planned only."
  default     = "main"
}

variable "tf_state_bucket" {
  type        = string
  description = "The bucket holding the Terraform state and terraform.tfvars (made by hand before the first apply). The plan account may read it, the apply account may write it."
  default     = ""
  validation {
    condition     = var.tf_state_bucket == "" || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.tf_state_bucket))
    error_message = "tf_state_bucket must be a bucket name, or empty."
  }
}

variable "tf_state_prefix" {
  type        = string
  description = "Prefix of the state in tf_state_bucket (terraform init -backend-config=prefix=...)."
  default     = "triage"
}
