# The semantic memory. chroma_mode = "cloud_run" runs the Chroma server here: one instance
# (Chroma's SQLite and index files allow one writer), its files in a Cloud Storage bucket
# mounted with Cloud Storage FUSE, reachable only with an ID token of the functions' service
# accounts. Cheap and self-contained, fine for a memory of some hundred thousand tickets;
# writes are slower than on a local disk and a restart reloads the index from the bucket.
# chroma_mode = "external" points both functions at an existing server (Chroma Cloud,
# or a VM with a persistent disk) with CHROMA_TOKEN: managed, scales further, costs more.
# README, "Deploy", discusses the choice.

resource "google_service_account" "chroma" {
  count = var.chroma_mode == "cloud_run" ? 1 : 0

  account_id   = "${var.name_prefix}-chroma"
  display_name = "Chroma server on Cloud Run"
}

resource "google_storage_bucket" "chroma" {
  count = var.chroma_mode == "cloud_run" ? 1 : 0

  name                        = "${var.project_id}-${var.name_prefix}-memory"
  location                    = var.region
  labels                      = local.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true # an overwritten index file can be restored
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }
  #checkov:skip=CKV_GCP_62:Access logs of the memory's own data files would log every index write.
}

# The Chroma server reads and writes its files in the bucket, nothing else.
resource "google_storage_bucket_iam_member" "chroma_data" {
  count = var.chroma_mode == "cloud_run" ? 1 : 0

  bucket = google_storage_bucket.chroma[0].name
  role   = "roles/storage.objectUser"
  member = google_service_account.chroma[0].member
}

resource "google_cloud_run_v2_service" "chroma" {
  count = var.chroma_mode == "cloud_run" ? 1 : 0

  name                = "${var.name_prefix}-chroma"
  location            = var.region
  labels              = local.labels
  ingress             = "INGRESS_TRAFFIC_ALL" # reached with an ID token; IAM turns everyone else away
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.chroma[0].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2" # needed for the bucket mount
    max_instance_request_concurrency = 80
    timeout                          = "60s"

    scaling {
      min_instance_count = 1 # the index stays loaded
      max_instance_count = 1 # one writer
    }

    containers {
      image = var.chroma_image
      args  = ["run", "--host", "0.0.0.0", "--port", "8000", "--path", "/data"]

      ports {
        container_port = 8000
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "2Gi"
        }
        cpu_idle = false # a min-instance that answers at once
      }

      volume_mounts {
        name       = "data"
        mount_path = "/data"
      }

      startup_probe {
        tcp_socket {
          port = 8000
        }
        period_seconds    = 2
        failure_threshold = 30
      }
    }

    volumes {
      name = "data"
      gcs {
        bucket    = google_storage_bucket.chroma[0].name
        read_only = false
      }
    }
  }

  depends_on = [google_project_service.api, google_storage_bucket_iam_member.chroma_data]
}

# Both functions use the memory; nobody else may call it.
resource "google_cloud_run_v2_service_iam_member" "chroma_clients" {
  for_each = var.chroma_mode == "cloud_run" ? {
    api    = google_service_account.api.member
    worker = google_service_account.worker.member
  } : {}

  name     = google_cloud_run_v2_service.chroma[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}
