# The semantic memory's index. chroma_mode = "gce" (the default) runs the pinned Chroma server
# the way Chroma's own GCP guide does, a long-running server with its data on a persistent
# disk, here as a single-instance managed instance group so that a dead or unhealthy VM is
# recreated with the same name, the same private address and the same disk:
#   - the data disk is a separate google_compute_disk with a daily snapshot schedule, held by
#     the group's per-instance config (delete_rule NEVER);
#   - no external IP; the functions and the backfill job reach it over a Serverless VPC Access
#     connector, and the firewall admits only the connector's range, on the proxy port only;
#   - token auth: the Chroma 1.x (Rust) server shipped a no-op auth provider
#     (chroma-core/chroma #3750; #4965 reports the old auth settings doing nothing) and
#     Chroma's cookbook puts a proxy in front for v1.0.x, so nginx on the VM checks the
#     x-chroma-token header the Python client sends with CHROMA_AUTH=token, against
#     CHROMA_TOKEN from Secret Manager. Should a later server check tokens itself, the proxy
#     still does its job.
# Firestore is the memory's system of record: a lost disk is rebuilt with `triage rebuild`
# (README, "Deploy", restoring the memory). chroma_mode = "external" points both functions at
# an existing server (Chroma Cloud, or your own) with CHROMA_TOKEN.

locals {
  gce         = var.chroma_mode == "gce"
  chroma_zone = var.chroma_zone != "" ? var.chroma_zone : "${var.region}-b"
  # The port clients use (nginx) and the one Chroma listens on, on 127.0.0.1 only.
  chroma_proxy_port  = 8000
  chroma_server_port = 8001
  chroma_data_device = "chroma-data"
  chroma_vm_name     = "${var.name_prefix}-chroma"
}

resource "google_service_account" "chroma" {
  count = local.gce ? 1 : 0

  account_id   = "${var.name_prefix}-chroma"
  display_name = "Chroma server VM"
}

# The VM writes its logs and metrics, pulls its two images from the mirror and reads its token.
resource "google_project_iam_member" "chroma" {
  for_each = local.gce ? toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"]) : toset([])

  project = var.project_id
  role    = each.value
  member  = google_service_account.chroma[0].member
}

resource "google_artifact_registry_repository_iam_member" "chroma_pulls" {
  count = local.gce ? 1 : 0

  location   = google_artifact_registry_repository.dockerhub.location
  repository = google_artifact_registry_repository.dockerhub.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.chroma[0].member
}

resource "google_secret_manager_secret_iam_member" "chroma_token" {
  count = local.gce && contains(var.secrets, "CHROMA_TOKEN") ? 1 : 0

  secret_id = google_secret_manager_secret.secret["CHROMA_TOKEN"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.chroma[0].member
}

# ------------------------------------------------------------------ network

resource "google_compute_network" "memory" {
  count = local.gce ? 1 : 0

  name                    = "${var.name_prefix}-memory"
  auto_create_subnetworks = false

  depends_on = [google_project_service.api]
}

resource "google_compute_subnetwork" "memory" {
  count = local.gce ? 1 : 0

  name          = "${var.name_prefix}-memory"
  region        = var.region
  network       = google_compute_network.memory[0].id
  ip_cidr_range = var.chroma_subnet_cidr
  # The VM has no external IP: Secret Manager, Logging and the Artifact Registry mirror are
  # reached through Private Google Access.
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# CHROMA_HOST: an address reserved once, which the per-instance config keeps on the VM
# through every recreation.
resource "google_compute_address" "chroma" {
  count = local.gce ? 1 : 0

  name         = local.chroma_vm_name
  region       = var.region
  subnetwork   = google_compute_subnetwork.memory[0].id
  address_type = "INTERNAL"
  labels       = local.labels
}

# Both functions and the backfill job send their private traffic through this connector.
resource "google_vpc_access_connector" "functions" {
  count = local.gce ? 1 : 0

  name          = "${var.name_prefix}-vpc" # at most 25 characters
  region        = var.region
  network       = google_compute_network.memory[0].name
  ip_cidr_range = var.vpc_connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3

  depends_on = [google_project_service.api]
}

# Only the connector's range may reach the VM, and only on the proxy port.
resource "google_compute_firewall" "chroma_clients" {
  count = local.gce ? 1 : 0

  name      = "${var.name_prefix}-chroma-clients"
  network   = google_compute_network.memory[0].id
  direction = "INGRESS"

  source_ranges           = [var.vpc_connector_cidr]
  target_service_accounts = [google_service_account.chroma[0].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(local.chroma_proxy_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Google's health checkers (documented source ranges) probe /healthz for autohealing.
resource "google_compute_firewall" "chroma_health_checks" {
  count = local.gce ? 1 : 0

  name      = "${var.name_prefix}-chroma-health-checks"
  network   = google_compute_network.memory[0].id
  direction = "INGRESS"

  source_ranges           = ["35.191.0.0/16", "130.211.0.0/22"]
  target_service_accounts = [google_service_account.chroma[0].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(local.chroma_proxy_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# ------------------------------------------------------------------ data and snapshots

resource "google_compute_resource_policy" "chroma_snapshots" {
  count = local.gce ? 1 : 0

  name   = "${var.name_prefix}-chroma-snapshots"
  region = var.region

  snapshot_schedule_policy {
    schedule {
      daily_schedule {
        days_in_cycle = 1
        start_time    = var.chroma_snapshot_start_time
      }
    }
    retention_policy {
      max_retention_days = var.chroma_snapshot_retention_days
      # A deleted disk's snapshots are how it comes back.
      on_source_disk_delete = "KEEP_AUTO_SNAPSHOTS"
    }
    snapshot_properties {
      labels            = local.labels
      storage_locations = [var.region]
      # Crash-consistent: Chroma's SQLite journal recovers as after a power cut, and Firestore
      # can rebuild the index anyway.
      guest_flush = false
    }
  }
}

resource "google_compute_disk" "chroma" {
  count = local.gce ? 1 : 0

  name   = "${var.name_prefix}-chroma-data"
  zone   = local.chroma_zone
  type   = "pd-balanced"
  size   = var.chroma_disk_size_gb
  labels = local.labels

  # Google-managed encryption, like Firestore's. Losing the disk costs a rebuild from
  # Firestore, not data: the snapshots outlive it (KEEP_AUTO_SNAPSHOTS).
  #checkov:skip=CKV_GCP_37:Customer-supplied keys would have to be handed to every VM start; the index is rebuildable from Firestore, which holds the data.

  lifecycle {
    # The restore procedure (README, "Deploy") recreates this disk, same name, from a
    # snapshot: Terraform must then keep it, not replace it with an empty one.
    ignore_changes = [snapshot]
  }

  depends_on = [google_project_service.api]
}

resource "google_compute_disk_resource_policy_attachment" "chroma_snapshots" {
  count = local.gce ? 1 : 0

  name = google_compute_resource_policy.chroma_snapshots[0].name
  disk = google_compute_disk.chroma[0].name
  zone = local.chroma_zone
}

# ------------------------------------------------------------------ the VM

resource "google_compute_instance_template" "chroma" {
  count = local.gce ? 1 : 0

  name_prefix  = "${local.chroma_vm_name}-"
  machine_type = var.chroma_machine_type
  region       = var.region
  labels       = local.labels
  # Container-Optimized OS: Docker, docker-credential-gcr and cloud-init, nothing else. The
  # family link (not an image) keeps new COS releases from changing the template.
  can_ip_forward = false

  disk {
    source_image = "projects/cos-cloud/global/images/family/cos-stable"
    boot         = true
    auto_delete  = true
    disk_type    = "pd-balanced"
    disk_size_gb = 20
    labels       = local.labels
  }

  # No access_config: no external IP (the images come through the mirror, the APIs through
  # Private Google Access).
  network_interface {
    subnetwork = google_compute_subnetwork.memory[0].id
  }

  service_account {
    email  = google_service_account.chroma[0].email
    scopes = ["cloud-platform"] # what it may do is its IAM roles above, nothing more
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    user-data = templatefile("${path.module}/chroma-vm.yaml.tftpl", {
      data_device   = local.chroma_data_device
      proxy_port    = local.chroma_proxy_port
      chroma_port   = local.chroma_server_port
      chroma_image  = "${local.dockerhub_mirror}/${var.chroma_image}"
      proxy_image   = "${local.dockerhub_mirror}/${local.chroma_proxy_image_path}"
      registry_host = local.registry_host
      # The pinned version: rotating CHROMA_TOKEN (secret_versions) changes the template, and
      # the group recreates the VM with the new token.
      token_version = "${try(google_secret_manager_secret.secret["CHROMA_TOKEN"].id, "")}/versions/${lookup(local.secret_version, "CHROMA_TOKEN", "latest")}"
    })
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    block-project-ssh-keys    = "true"
    enable-oslogin            = "TRUE"
    serial-port-enable        = "false"
  }

  scheduling {
    automatic_restart   = true
    on_host_maintenance = "MIGRATE"
  }

  lifecycle {
    create_before_destroy = true
    precondition {
      condition     = contains(var.secrets, "CHROMA_TOKEN")
      error_message = "The Chroma VM's proxy checks CHROMA_TOKEN: add it to var.secrets."
    }
  }
}

resource "google_compute_health_check" "chroma" {
  count = local.gce ? 1 : 0

  name                = "${local.chroma_vm_name}-healthz"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 6 # a minute of failures, so a long index load is not mistaken for a hang

  http_health_check {
    port         = local.chroma_proxy_port
    request_path = "/healthz"
  }

  log_config {
    enable = true
  }
}

# A single-instance group: its size comes from the per-instance config below, so the group
# is created empty and Terraform leaves its size alone (terraform-provider-google #15911:
# a target_size of 1 next to a per-instance config makes two VMs; #20662: the config
# changes target_size).
resource "google_compute_instance_group_manager" "chroma" {
  count = local.gce ? 1 : 0

  name               = local.chroma_vm_name
  zone               = local.chroma_zone
  base_instance_name = local.chroma_vm_name
  target_size        = 0

  version {
    instance_template = google_compute_instance_template.chroma[0].id
  }

  auto_healing_policies {
    health_check      = google_compute_health_check.chroma[0].id
    initial_delay_sec = 300 # image pulls and a cold index load
  }

  # One VM with a named disk and address: it is replaced by recreating it (never a second
  # one beside it, which could not attach the disk).
  update_policy {
    type                           = "PROACTIVE"
    minimal_action                 = "REPLACE"
    replacement_method             = "RECREATE"
    max_surge_fixed                = 0
    max_unavailable_fixed          = 1
    most_disruptive_allowed_action = "REPLACE"
  }

  lifecycle {
    ignore_changes = [target_size]
  }
}

resource "google_compute_per_instance_config" "chroma" {
  count = local.gce ? 1 : 0

  zone                   = local.chroma_zone
  instance_group_manager = google_compute_instance_group_manager.chroma[0].name
  name                   = local.chroma_vm_name

  preserved_state {
    disk {
      device_name = local.chroma_data_device
      source      = google_compute_disk.chroma[0].id
      mode        = "READ_WRITE"
      delete_rule = "NEVER"
    }
    internal_ip {
      interface_name = "nic0"
      auto_delete    = "NEVER"
      ip_address {
        address = google_compute_address.chroma[0].self_link
      }
    }
  }

  depends_on = [
    google_project_iam_member.chroma,
    google_artifact_registry_repository_iam_member.chroma_pulls,
    google_secret_manager_secret_iam_member.chroma_token,
    google_compute_disk_resource_policy_attachment.chroma_snapshots,
  ]
}
