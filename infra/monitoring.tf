# Log-based metrics on the functions' structured logs (functions/triage/logs.py: one JSON
# object per line, its fields under jsonPayload), alerts on what needs a person, and the
# dashboard (dashboard.json.tftpl).

locals {
  worker_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.worker_name}\""
  api_logs    = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.api_name}\""
  # The subscriptions the worker acknowledges. Not the -hold one: nobody acknowledges that
  # one, so an age alert on it would fire for a week after any dead letter.
  work_subscriptions = concat(
    [for subscription in google_pubsub_subscription.worker : subscription.name],
    [google_pubsub_subscription.dead_letter_worker.name],
  )
  notification_channels = concat(
    var.notification_channels,
    [for channel in google_monitoring_notification_channel.email : channel.id],
  )
}

resource "google_monitoring_notification_channel" "email" {
  for_each = var.alert_email == "" ? toset([]) : toset([var.alert_email])

  display_name = "Ticket triage alerts"
  user_labels  = local.labels
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_logging_metric" "tickets_classified" {
  name        = "${var.name_prefix}/tickets_classified"
  description = "Tickets classified, by path (memory or classifier), status and classifier."
  filter      = "${local.worker_logs} AND jsonPayload.message=\"ticket classified\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key = "path"
    }
    labels {
      key = "status"
    }
    labels {
      key = "classifier"
    }
  }
  label_extractors = {
    path       = "EXTRACT(jsonPayload.path)"
    status     = "EXTRACT(jsonPayload.status)"
    classifier = "EXTRACT(jsonPayload.classifier)"
  }
}

resource "google_logging_metric" "classification_latency" {
  name            = "${var.name_prefix}/classification_latency"
  description     = "Worker time per classified ticket, in milliseconds."
  filter          = "${local.worker_logs} AND jsonPayload.message=\"ticket classified\""
  value_extractor = "EXTRACT(jsonPayload.latency_ms)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    labels {
      key = "path"
    }
  }
  label_extractors = {
    path = "EXTRACT(jsonPayload.path)"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 1.6
      scale              = 5
    }
  }
}

resource "google_logging_metric" "tickets_failed" {
  name        = "${var.name_prefix}/tickets_failed"
  description = "Tickets that ended Failed (permanent fault, attempts exhausted, dead-lettered, stuck)."
  filter      = "${local.worker_logs} AND jsonPayload.message=(\"ticket failed\" OR \"message dead-lettered\" OR \"stuck ticket failed\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "classifier_misconfigured" {
  name        = "${var.name_prefix}/classifier_misconfigured"
  description = "Calls Gemini refused for the configured credentials (a wrong or revoked key, a missing role): tickets fall back to the local classifier or wait, Pending, for the fix."
  filter      = "${local.worker_logs} AND severity=CRITICAL AND jsonPayload.message=~\"^Gemini refuses the configured credentials\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "tickets_corrected" {
  name        = "${var.name_prefix}/tickets_corrected"
  description = "Reviewers' verdicts (the API's logs): corrections (POST /tickets/{id}/feedback with new labels) and confirmations (POST /tickets/{id}/confirm), by verdict."
  filter      = "${local.api_logs} AND jsonPayload.message=\"ticket reviewed\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key = "verdict"
    }
  }
  label_extractors = {
    verdict = "EXTRACT(jsonPayload.verdict)"
  }
}

# The precision promise, measured: each outcome of a memory answer (the worker's audits, the
# API's confirmations and corrections), per label, value and result. Precision per category =
# correct / (correct + wrong) over a window; /stats adds the 95% lower bound and the bar.
resource "google_logging_metric" "memory_outcomes" {
  name        = "${var.name_prefix}/memory_outcomes"
  description = "Measured outcomes of memory answers, by label, value, source (audit, confirmation, correction) and result (correct, wrong)."
  filter      = "(${local.api_logs} OR ${local.worker_logs}) AND jsonPayload.message=\"memory answer outcome\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key = "label"
    }
    labels {
      key = "value"
    }
    labels {
      key = "source"
    }
    labels {
      key = "result"
    }
  }
  label_extractors = {
    label  = "EXTRACT(jsonPayload.label)"
    value  = "EXTRACT(jsonPayload.value)"
    source = "EXTRACT(jsonPayload.source)"
    result = "EXTRACT(jsonPayload.result)"
  }
}

# A bar that rose by itself because the measured precision of a value fell below the target.
resource "google_logging_metric" "memory_threshold_tightened" {
  name        = "${var.name_prefix}/memory_threshold_tightened"
  description = "Memory bars tightened by the live check, by label and value."
  filter      = "(${local.api_logs} OR ${local.worker_logs}) AND jsonPayload.message=~\"^memory threshold tightened\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key = "label"
    }
    labels {
      key = "value"
    }
  }
  label_extractors = {
    label = "EXTRACT(jsonPayload.label)"
    value = "EXTRACT(jsonPayload.value)"
  }
}

# Tokens per LLM call, as Gemini reported them (output includes thinking tokens).
resource "google_logging_metric" "llm_input_tokens" {
  name            = "${var.name_prefix}/llm_input_tokens"
  description     = "Input tokens per LLM classification."
  filter          = "${local.worker_logs} AND jsonPayload.message=\"ticket classified\" AND jsonPayload.input_tokens>0"
  value_extractor = "EXTRACT(jsonPayload.input_tokens)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 1.6
      scale              = 50
    }
  }
}

resource "google_logging_metric" "llm_output_tokens" {
  name            = "${var.name_prefix}/llm_output_tokens"
  description     = "Output tokens (thinking included) per LLM classification."
  filter          = "${local.worker_logs} AND jsonPayload.message=\"ticket classified\" AND jsonPayload.output_tokens>0"
  value_extractor = "EXTRACT(jsonPayload.output_tokens)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 1.6
      scale              = 10
    }
  }
}

# Cloud Monitoring answers 404 to an alert policy on a log-based metric for up to 10 minutes
# after the metric is created ("If a metric was created recently, it could take up to 10
# minutes to become available": terraform-provider-google #11102, still open). Alerts on
# log-based metrics wait for this; it runs again when such a metric is recreated.
resource "time_sleep" "log_metrics_visible" {
  create_duration = var.log_metric_wait

  triggers = {
    tickets_failed           = google_logging_metric.tickets_failed.id
    classifier_misconfigured = google_logging_metric.classifier_misconfigured.id
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Ticket triage: messages in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "undelivered dead letters > 0"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Pub/Sub gave up on a message. The ticket is Failed with its last error: `triage failed` lists them, `triage replay` sends them again (README, Reliability). Pull the hold subscription to see the raw messages."
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  display_name          = "Ticket triage: work waiting too long"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "oldest unacknowledged message age"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of(${join(", ", [for name in local.work_subscriptions : "\"${name}\""])}) AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Tickets wait in Pub/Sub: the worker is failing (see the 5xx alert and its logs), at worker_max_instances, or Gemini is rate-limiting."
  }
}

resource "google_monitoring_alert_policy" "errors" {
  display_name          = "Ticket triage: 5xx answers"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "5xx per second, API or worker"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(\"${local.api_name}\", \"${local.worker_name}\") AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_5xx_per_second
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The API answers 503 when Firestore or Pub/Sub is unavailable; the worker answers 500 on a transient fault (Gemini, Chroma, Firestore) so Pub/Sub delivers again. Read the function's logs at severity WARNING and above."
  }
}

resource "google_monitoring_alert_policy" "failed_tickets" {
  display_name          = "Ticket triage: tickets failed"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "failed tickets in 10 minutes"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.tickets_failed.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A ticket ended Failed with its reason. `triage failed` lists them; `triage replay` retries them once the cause is fixed."
  }

  depends_on = [time_sleep.log_metrics_visible]
}

resource "google_monitoring_alert_policy" "classifier_misconfigured" {
  display_name          = "Ticket triage: Gemini refuses the credentials"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "refused credentials in 5 minutes"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.classifier_misconfigured.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Gemini refuses the worker's credentials (`API_KEY_INVALID`, 401 or 403). Tickets are answered by the local classifier and flagged for review, or with `CLASSIFIER_FALLBACK=none` wait Pending and are re-sent by each reconcile. Fix the key in Secret Manager (Gemini API) or the worker's `roles/aiplatform.user` (Vertex AI)."
  }

  depends_on = [time_sleep.log_metrics_visible]
}

# The operator's dashboard: the same views as the Grafana one over /metrics
# (docs/dashboards/triage.json), from the log-based metrics above and Cloud Run's and
# Pub/Sub's own metrics. tests/infra checks that every metric it names is declared here or
# is one of the built-in metric types it allows.
resource "google_monitoring_dashboard" "triage" {
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    display_name = "Ticket triage (${var.name_prefix})"
    metrics = {
      tickets_classified     = google_logging_metric.tickets_classified.name
      classification_latency = google_logging_metric.classification_latency.name
      tickets_failed         = google_logging_metric.tickets_failed.name
      tickets_corrected      = google_logging_metric.tickets_corrected.name
      memory_outcomes        = google_logging_metric.memory_outcomes.name
      llm_input_tokens       = google_logging_metric.llm_input_tokens.name
      llm_output_tokens      = google_logging_metric.llm_output_tokens.name
    }
    api_service       = local.api_name
    worker_service    = local.worker_name
    hold_subscription = google_pubsub_subscription.dead_letter_hold.name
    # Rendered inside a JSON string: each name quoted with escaped quotes.
    work_subscriptions = join(", ", [for name in local.work_subscriptions : "\\\"${name}\\\""])
  })
}
