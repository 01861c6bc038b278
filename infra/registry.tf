# Container images this deployment runs or builds with.
#
# dockerhub: a remote repository in front of Docker Hub. The first pull of a tag caches it
# here and later pulls are served from the cache, also while Docker Hub is down or has
# rate-limited us (Artifact Registry, "Remote repositories overview"). The Chroma VM pulls
# Chroma and its proxy through it (it has no external IP), and Cloud Build pulls its builder
# images through it (cloudbuild.yaml, _MIRROR), so a pinned tag keeps resolving to the image
# the pipeline was tested with.
#
# images: our own images, today the backfill job's (built by cloudbuild.yaml from
# infra/backfill/Dockerfile, tagged by the hash of what goes into it).

locals {
  registry_host    = "${var.region}-docker.pkg.dev"
  dockerhub_mirror = "${local.registry_host}/${var.project_id}/${google_artifact_registry_repository.dockerhub.repository_id}"
  images_registry  = "${local.registry_host}/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  # Docker Hub's official images live under library/.
  chroma_proxy_image_path = strcontains(var.chroma_proxy_image, "/") ? var.chroma_proxy_image : "library/${var.chroma_proxy_image}"
}

resource "google_artifact_registry_repository" "dockerhub" {
  location      = var.region
  repository_id = "${var.name_prefix}-dockerhub"
  description   = "Pull-through cache of Docker Hub: Chroma, its proxy and the Cloud Build builder images"
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  labels        = local.labels

  #checkov:skip=CKV_GCP_84:A cache of public Docker Hub images: Google-managed encryption, nothing a customer key would protect.

  remote_repository_config {
    description = "Docker Hub"
    docker_repository {
      public_repository = "DOCKER_HUB"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "${var.name_prefix}-images"
  description   = "Images built from this repository (the backfill job)"
  format        = "DOCKER"
  labels        = local.labels

  #checkov:skip=CKV_GCP_84:Built from this repository's public code and public packages: Google-managed encryption.

  # Tags are content hashes; keep the recent ones, so a rollback has something to go to.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s" # 30 days, unless among the 10 most recent
    }
  }

  depends_on = [google_project_service.api]
}
