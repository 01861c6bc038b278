# Work reaches the worker by a direct push subscription, not an Eventarc trigger: a trigger's
# subscription is managed by Eventarc and cannot carry a dead-letter policy, and we want
# Pub/Sub itself to park a message the worker could never handle. The push carries an OIDC
# token of the push account, and the worker accepts internal traffic only.
# functions-framework turns the raw push envelope into the same CloudEvent Eventarc would send.

locals {
  worker_url = google_cloudfunctions2_function.worker.service_config[0].uri
  # Topics whose messages the worker handles: classification work and write-back work.
  work_topics = {
    tickets   = google_pubsub_topic.tickets
    writeback = google_pubsub_topic.writeback
  }
}

resource "google_pubsub_topic" "tickets" {
  name                       = "${var.name_prefix}-tickets"
  kms_key_name               = var.kms_key_name
  labels                     = local.labels
  message_retention_duration = "86400s" # a day to replay from, should a bad release ack too much

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "writeback" {
  name         = "${var.name_prefix}-ticket-writeback"
  kms_key_name = var.kms_key_name
  labels       = local.labels

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  name         = "${var.name_prefix}-tickets-dead-letter"
  kms_key_name = var.kms_key_name
  labels       = local.labels

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "worker" {
  for_each = local.work_topics

  name   = "${each.value.name}-worker"
  topic  = each.value.id
  labels = local.labels

  ack_deadline_seconds       = var.worker_timeout_seconds
  message_retention_duration = "604800s"

  push_config {
    # The topic path makes functions-framework give the event the topic as its source.
    push_endpoint = "${local.worker_url}/projects/${var.project_id}/topics/${each.value.name}"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.worker_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # The worker fails a ticket itself after MAX_DELIVERY_ATTEMPTS; two more deliveries
  # cover a worker that crashed before it could record that.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts + 2
  }

  expiration_policy {
    ttl = "" # never expire for inactivity
  }

  depends_on = [google_pubsub_topic_iam_member.pubsub_dead_letters]
}

# Dead letters go twice: to the worker, which records the ticket as Failed with the number of
# deliveries, and to a pull subscription that keeps them for a person (the alert watches it).
resource "google_pubsub_subscription" "dead_letter_worker" {
  name   = "${google_pubsub_topic.dead_letter.name}-worker"
  topic  = google_pubsub_topic.dead_letter.id
  labels = local.labels

  ack_deadline_seconds = 60

  push_config {
    push_endpoint = "${local.worker_url}/projects/${var.project_id}/topics/${google_pubsub_topic.dead_letter.name}"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.worker_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "dead_letter_hold" {
  name   = "${google_pubsub_topic.dead_letter.name}-hold"
  topic  = google_pubsub_topic.dead_letter.id
  labels = local.labels

  message_retention_duration = "604800s" # a week to look, then `triage replay`

  expiration_policy {
    ttl = ""
  }
}

# The API publishes new tickets; the worker republishes (reconcile) and queues write-backs.
resource "google_pubsub_topic_iam_member" "api_publishes_tickets" {
  topic  = google_pubsub_topic.tickets.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.api.member
}

resource "google_pubsub_topic_iam_member" "worker_publishes" {
  for_each = local.work_topics

  topic  = each.value.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.worker.member
}

# Dead-lettering: the Pub/Sub service agent must publish to the dead-letter topic and
# acknowledge on the source subscriptions.
resource "google_pubsub_topic_iam_member" "pubsub_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_acks_dead_letters" {
  for_each = local.work_topics

  subscription = google_pubsub_subscription.worker[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Cloud Scheduler publishes the reconcile message with its service agent.
resource "google_pubsub_topic_iam_member" "scheduler_publishes_reconcile" {
  topic  = google_pubsub_topic.tickets.id
  role   = "roles/pubsub.publisher"
  member = local.scheduler_agent
}

# The stuck-ticket reconciler (README, "Reliability"): Pending tickets are republished,
# boundedly, and write-backs and memory updates that stopped are queued again.
resource "google_cloud_scheduler_job" "reconcile" {
  name        = "${var.name_prefix}-reconcile"
  region      = var.region
  description = "Republish stuck tickets (worker message kind reconcile)"
  schedule    = var.reconcile_schedule
  time_zone   = var.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.tickets.id
    data       = base64encode(jsonencode({ kind = "reconcile" }))
  }

  retry_config {
    retry_count = 1
  }

  depends_on = [google_project_service.api]
}
