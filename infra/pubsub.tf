# Work reaches the worker by a direct push subscription, not an Eventarc trigger: a trigger's
# subscription is managed by Eventarc and cannot carry a dead-letter policy, and we want
# Pub/Sub itself to park a message the worker could never handle. The push carries an OIDC
# token of the push account, and the worker accepts internal traffic only.
# functions-framework turns the raw push envelope into the same CloudEvent Eventarc would send.

locals {
  worker_url = google_cloudfunctions2_function.worker.service_config[0].uri
  # Topics whose messages the worker handles: classification work (new tickets, reconcile,
  # memory updates, audit re-classification) and write-back work.
  work_topics = {
    tickets   = google_pubsub_topic.tickets
    writeback = google_pubsub_topic.writeback
  }

  # The dead-letter budget. Pub/Sub counts every push that is not acknowledged as a delivery
  # attempt, including the 429/503 answers Cloud Run gives while the worker is at
  # worker_max_instances. The worker counts its own real attempts (MAX_DELIVERY_ATTEMPTS, on
  # the ticket in Firestore) and fails a ticket itself, so Pub/Sub's count only has to outlast
  # the refusals of a burst plus those attempts:
  #   capacity      = worker_max_instances x worker_tickets_per_second (11/s per instance, measured)
  #   drain         = burst_tickets / capacity                  (1,000,000 / 110 = 9,091 s)
  #   refusals      = pushes one message can be refused while the burst drains, with the
  #                   backoff doubling from 10 s to the 600 s cap: 10+20+...+320 = 630 s in 6
  #                   refusals, then one per 600 s, plus the first push: 6 + ceil(8,461/600) + 1 = 22
  #   Pub/Sub limit = MAX_DELIVERY_ATTEMPTS + 2 (a worker that died before recording the
  #                   failure) + refusals = 5 + 2 + 22 = 29 deliveries (Pub/Sub allows 5-100).
  # (Pub/Sub documents the backoff as exponential between the two bounds without naming the
  # factor; doubling is the assumption. Push flow control also slows pushes to an endpoint
  # that refuses them, which only means fewer refusals than this.)
  push_min_backoff_seconds   = 10
  push_max_backoff_seconds   = 600
  worker_capacity_per_second = var.worker_max_instances * var.worker_tickets_per_second
  burst_drain_seconds        = ceil(var.burst_tickets / local.worker_capacity_per_second)
  backoff_doublings          = ceil(log(local.push_max_backoff_seconds / local.push_min_backoff_seconds, 2))
  backoff_ramp_seconds       = local.push_min_backoff_seconds * (pow(2, local.backoff_doublings) - 1)
  refusals_during_burst = 1 + (
    local.burst_drain_seconds <= local.backoff_ramp_seconds
    ? ceil(log(local.burst_drain_seconds / local.push_min_backoff_seconds + 1, 2))
    : local.backoff_doublings + ceil((local.burst_drain_seconds - local.backoff_ramp_seconds) / local.push_max_backoff_seconds)
  )
  pubsub_max_delivery_attempts = var.max_delivery_attempts + 2 + local.refusals_during_burst
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
    minimum_backoff = "${local.push_min_backoff_seconds}s"
    maximum_backoff = "${local.push_max_backoff_seconds}s"
  }

  # Sized above: the refusals of a burst, the worker's own attempts, and two for a worker
  # that crashed before it could record the failure.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = local.pubsub_max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expire for inactivity
  }

  lifecycle {
    precondition {
      condition     = local.pubsub_max_delivery_attempts <= 100
      error_message = "A burst of ${var.burst_tickets} tickets at ${local.worker_capacity_per_second} tickets/s needs ${local.pubsub_max_delivery_attempts} Pub/Sub deliveries, over Pub/Sub's limit of 100: raise worker_max_instances or lower burst_tickets."
    }
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
    minimum_backoff = "${local.push_min_backoff_seconds}s"
    maximum_backoff = "${local.push_max_backoff_seconds}s"
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

# The API publishes new tickets and audit re-classifications to the tickets topic, and queues
# write-back of a human correction (POST /tickets/{id}/feedback) to the write-back topic,
# where the feedback arrives. The worker republishes (reconcile, memory updates) and queues
# write-backs of its own classifications.
resource "google_pubsub_topic_iam_member" "api_publishes" {
  for_each = local.work_topics

  topic  = each.value.id
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
