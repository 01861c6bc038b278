resource "google_firestore_database" "main" {
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"
  # The store writes with update-time preconditions (optimistic), never long transactions.
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.api]
}

# Every composite index the store's queries need: one equality, then the field the query
# ranges over or orders by.
locals {
  ticket_indexes = {
    # FirestoreTicketStore.find: the reconciler, `triage failed`, replay.
    status_updated     = { equality = "status", then = "updated_at", order = "ASCENDING" }
    writeback_updated  = { equality = "writeback.status", then = "updated_at", order = "ASCENDING" }
    remembered_updated = { equality = "classification.remembered", then = "updated_at", order = "ASCENDING" }
    # GET /stats: tickets created in a window, by status and by the path that answered.
    status_created = { equality = "status", then = "created_at", order = "ASCENDING" }
    path_created   = { equality = "classification.path", then = "created_at", order = "ASCENDING" }
    # ... and by the classifier that answered (the local classifier is not an LLM call).
    classifier_created = { equality = "classification.classifier", then = "created_at", order = "ASCENDING" }
    # GET /tickets?status=...: the newest tickets of one status, for the review console.
    status_recent = { equality = "status", then = "updated_at", order = "DESCENDING" }
  }
}

# The memory's record (FirestoreMemoryRecords): the entries answered from a corrected one, per tenant,
# and those written since a time.
# (A tenant's scan, `triage rebuild`, orders by document name: a single-field index serves it.)
locals {
  memory_indexes = {
    tenant_followers = { equality = "tenant", then = "source_ticket_id", order = "ASCENDING" }
    # `triage rebuild`'s later passes: the entries recorded while it ran.
    tenant_updated = { equality = "tenant", then = "updated_at", order = "ASCENDING" }
  }
}

resource "google_firestore_index" "memory" {
  for_each = local.memory_indexes

  database   = google_firestore_database.main.name
  collection = local.memory_collection

  fields {
    field_path = each.value.equality
    order      = "ASCENDING"
  }
  fields {
    field_path = each.value.then
    order      = each.value.order
  }
}

# Each tenant's measured outcomes of memory answers (FirestoreCalibrations, the `outcomes`
# subcollection of a calibration): one value's record of a label, read when an outcome
# re-checks that value's bar.
locals {
  calibration_indexes = {
    outcomes_by_value = { equality = "label", then = "value", order = "ASCENDING" }
  }
}

resource "google_firestore_index" "calibration_outcomes" {
  for_each = local.calibration_indexes

  database   = google_firestore_database.main.name
  collection = "outcomes"

  fields {
    field_path = each.value.equality
    order      = "ASCENDING"
  }
  fields {
    field_path = each.value.then
    order      = each.value.order
  }
}

# A wrong outcome re-checks its value's bar on the outcomes at or above the bar only
# (FirestoreCalibrations.outcomes with at_least): two equalities and a range.
resource "google_firestore_index" "calibration_outcomes_above" {
  database   = google_firestore_database.main.name
  collection = "outcomes"

  fields {
    field_path = "label"
    order      = "ASCENDING"
  }
  fields {
    field_path = "value"
    order      = "ASCENDING"
  }
  fields {
    field_path = "probability"
    order      = "ASCENDING"
  }
}

resource "google_firestore_index" "tickets" {
  for_each = local.ticket_indexes

  database   = google_firestore_database.main.name
  collection = local.tickets_collection

  fields {
    field_path = each.value.equality
    order      = "ASCENDING"
  }
  fields {
    field_path = each.value.then
    order      = each.value.order
  }
}

# Webhook delivery ids only need remembering while a source may still retry: Firestore
# deletes each record after its expire_at (set 30 days ahead by the store).
resource "google_firestore_field" "delivery_ttl" {
  database   = google_firestore_database.main.name
  collection = local.deliveries_collection
  field      = "expire_at"

  ttl_config {}
  index_config {} # a TTL field needs no index
}
