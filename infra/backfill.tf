# Loading a large history in parallel: a Cloud Run job whose N tasks each run
#   triage backfill /history/<object> --shard auto --title-column ... --category-column ...
# `--shard auto` takes the task's share from CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT, so
# the tasks split the rows between them, and each writes its rows to Firestore (the system
# of record) and to Chroma. The history file is read from a Cloud Storage bucket mounted
# read-only: the problems of Cloud Storage FUSE (no locking, last write wins, whole files
# staged in memory) are all about writing, and the job only reads.
#
# Run it after uploading the file:
#   gcloud storage cp history.csv gs://$(terraform output -raw history_bucket)/history.csv
#   gcloud run jobs execute $(terraform output -raw backfill_job) --region $REGION --wait

locals {
  backfill        = var.backfill_image != ""
  history_mount   = "/history"
  backfill_secret = [for name in ["CHROMA_TOKEN"] : name if contains(var.secrets, name)]
  backfill_env = merge(var.settings, local.chroma_env, {
    GOOGLE_CLOUD_PROJECT = var.project_id
    MEMORY_COLLECTION    = local.memory_collection
    CHROMA_TENANT        = var.chroma_tenant
    CHROMA_DATABASE      = var.chroma_database
    HF_HUB_OFFLINE       = "1"
    LOG_LEVEL            = "INFO"
    # The image has the runtime lock only (no torch): it embeds with the ONNX export, as the worker.
    EMBEDDING_BACKEND = "onnx"
  })
}

resource "google_storage_bucket" "history" {
  name                        = "${var.project_id}-${var.name_prefix}-history"
  location                    = var.region
  labels                      = local.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true # a replaced history file can still be read back
  }
  #checkov:skip=CKV_GCP_62:Access logs of a bucket only the backfill job reads would log nothing but the job's own reads.
}

resource "google_service_account" "backfill" {
  account_id   = "${var.name_prefix}-backfill"
  display_name = "Sharded backfill job (Cloud Run job)"
}

# The job reads the history file, writes memory entries to Firestore and reads its Chroma token.
resource "google_storage_bucket_iam_member" "backfill_reads_history" {
  bucket = google_storage_bucket.history.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.backfill.member
}

resource "google_project_iam_member" "backfill_datastore" {
  project = var.project_id
  role    = "roles/datastore.user" # Firestore has no per-collection IAM
  member  = google_service_account.backfill.member
}

resource "google_secret_manager_secret_iam_member" "backfill" {
  for_each = toset(local.backfill_secret)

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.backfill.member
}

resource "google_cloud_run_v2_job" "backfill" {
  count = local.backfill ? 1 : 0

  name                = "${var.name_prefix}-backfill"
  location            = var.region
  labels              = local.labels
  deletion_protection = false # holds no data: the history is in its bucket, the result in Firestore

  template {
    task_count  = var.backfill_tasks
    parallelism = var.backfill_parallelism
    labels      = local.labels

    template {
      service_account       = google_service_account.backfill.email
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2" # Cloud Storage volumes need the second generation
      timeout               = var.backfill_task_timeout
      max_retries           = 3 # a task is idempotent by row id: a retry finishes its shard

      containers {
        image   = var.backfill_image
        command = ["triage"]
        args = concat(
          [
            "backfill", "${local.history_mount}/${var.backfill_object}",
            "--shard", "auto",
            "--title-column", var.backfill_title_column,
            "--category-column", var.backfill_category_column,
          ],
          var.backfill_extra_args,
        )

        dynamic "env" {
          for_each = local.backfill_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = toset(local.backfill_secret)
          content {
            name = env.value
            value_source {
              secret_key_ref {
                secret  = google_secret_manager_secret.secret[env.value].secret_id
                version = local.secret_version[env.value]
              }
            }
          }
        }

        resources {
          limits = {
            cpu    = "2"
            memory = "4Gi" # the embedding model (ONNX Runtime) and a chunk of 2048 rows
          }
        }

        volume_mounts {
          name       = "history"
          mount_path = local.history_mount
        }
      }

      volumes {
        name = "history"
        gcs {
          bucket    = google_storage_bucket.history.name
          read_only = true
        }
      }

      dynamic "vpc_access" {
        for_each = local.gce ? [1] : []
        content {
          connector = google_vpc_access_connector.functions[0].id
          egress    = "PRIVATE_RANGES_ONLY"
        }
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_storage_bucket_iam_member.backfill_reads_history,
    google_project_iam_member.backfill_datastore,
    google_secret_manager_secret_iam_member.backfill,
  ]
}
