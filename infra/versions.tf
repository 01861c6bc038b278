terraform {
  required_version = ">= 1.6"

  # Pessimistic constraints: minor and patch updates only, never a new major version by
  # surprise. The exact versions and their hashes belong in .terraform.lock.hcl, which is not
  # in the repository yet: no registry can be reached where it is developed, so the first
  # deploy writes it with `terraform providers lock` and commits it (README, "Deploy"). Cloud
  # Build runs `terraform init -lockfile=readonly`: until the lock is committed a build stops
  # at init, and after that it never picks a provider the lock does not name.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # time_sleep: the waits a first apply needs (IAM propagation, new log-based metrics).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }

  # State lives in a GCS bucket made once by hand (README, "Deploy"):
  #   terraform init -backend-config="bucket=$STATE_BUCKET" -backend-config="prefix=triage"
  backend "gcs" {}
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}

# Read at plan time through the Cloud Resource Manager API, which therefore has to be on
# before the first plan (README, "Deploy", step 1); apis.tf keeps it on afterwards.
data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(var.labels, {
    app        = "ticket-triage"
    managed-by = "terraform"
  })
  project_number = data.google_project.this.number
  # Google-managed service agents that act on our behalf.
  pubsub_agent    = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  scheduler_agent = "serviceAccount:service-${local.project_number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
}
