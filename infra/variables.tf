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
  description = "Concurrent requests per API instance. The API waits on Firestore and Pub/Sub, not on the CPU."
  default     = 40
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
  description = "Messages one worker instance handles at once (they share the model)."
  default     = 4
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
  description = "Attempts the worker makes before a ticket is Failed (MAX_DELIVERY_ATTEMPTS). Pub/Sub dead-letters a message two deliveries later, for the case where the worker could not even record the failure."
  default     = 5
  validation {
    condition     = var.max_delivery_attempts >= 3 && var.max_delivery_attempts <= 98
    error_message = "max_delivery_attempts must be 3-98 (Pub/Sub allows 5-100 deliveries, and we add 2)."
  }
}

variable "secrets" {
  type        = set(string)
  description = "Secrets this deployment uses. Terraform creates each in Secret Manager and wires it as a secret environment variable; add its value with gcloud (README) before the functions are deployed."
  default     = ["API_KEYS"]
  validation {
    condition = alltrue([for name in var.secrets : contains([
      "API_KEYS", "GEMINI_API_KEY", "CHROMA_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_API_TOKEN",
      "SERVICENOW_WEBHOOK_PASSWORD", "SERVICENOW_WEBHOOK_TOKEN", "SERVICENOW_WEBHOOK_SECRET", "SERVICENOW_PASSWORD",
    ], name)])
    error_message = "secrets may only name API_KEYS, GEMINI_API_KEY, CHROMA_TOKEN, JIRA_WEBHOOK_SECRET, JIRA_API_TOKEN, SERVICENOW_WEBHOOK_PASSWORD, SERVICENOW_WEBHOOK_TOKEN, SERVICENOW_WEBHOOK_SECRET or SERVICENOW_PASSWORD."
  }
}

variable "settings" {
  type        = map(string)
  description = "Other configuration for both functions, by environment variable (README, Configuration): e.g. GEMINI_MODEL, REDACT, RATE_LIMIT_PER_MINUTE, JIRA_TENANT. Never a secret: those go in var.secrets."
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
  description = "Configuration for the worker only: write-back (JIRA_WRITEBACK, JIRA_BASE_URL, JIRA_USER_EMAIL, SERVICENOW_WRITEBACK, SERVICENOW_INSTANCE_URL, SERVICENOW_USER, ...), which needs secrets only the worker holds."
  default     = {}
  validation {
    condition     = alltrue([for key in keys(var.worker_settings) : can(regex("^[A-Z][A-Z0-9_]*$", key))])
    error_message = "worker_settings keys are upper-case environment variable names."
  }
}

variable "chroma_mode" {
  type        = string
  description = "cloud_run: deploy the Chroma server on Cloud Run (one instance, data in a GCS bucket, IAM-only access). external: use an existing Chroma (Chroma Cloud, a VM) at chroma_host with CHROMA_TOKEN."
  default     = "cloud_run"
  validation {
    condition     = contains(["cloud_run", "external"], var.chroma_mode)
    error_message = "chroma_mode must be cloud_run or external."
  }
}

variable "chroma_image" {
  type        = string
  description = "Chroma server image for chroma_mode = cloud_run, pinned to the server version the tests run (emulators/requirements-chroma.txt)."
  default     = "chromadb/chroma:1.5.9"
  validation {
    condition     = can(regex(":[0-9]+\\.[0-9]+\\.[0-9]+$", var.chroma_image)) || can(regex("@sha256:[0-9a-f]{64}$", var.chroma_image))
    error_message = "chroma_image must be pinned to a version tag or a digest, never latest."
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
  description = "Protect the Firestore database and the memory bucket from terraform destroy."
  default     = true
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) to encrypt the Pub/Sub topics with; null keeps Google-managed encryption. Grant the Pub/Sub service agent roles/cloudkms.cryptoKeyEncrypterDecrypter on it first."
  default     = null
}
