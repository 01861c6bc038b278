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

# The queries of FirestoreTicketStore.find (reconcile, failed, replay) and of /stats:
# one equality, then updated_at for the range and the order.
locals {
  ticket_indexes = {
    status    = "status"
    writeback = "writeback.status"
    remember  = "classification.remembered"
  }
}

resource "google_firestore_index" "tickets" {
  for_each = local.ticket_indexes

  database   = google_firestore_database.main.name
  collection = local.tickets_collection

  fields {
    field_path = each.value
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_at"
    order      = "ASCENDING"
  }
}

# GET /stats: counts of tickets created in a window, by status and by the path that answered.
locals {
  created_indexes = {
    status = "status"
    path   = "classification.path"
  }
}

resource "google_firestore_index" "tickets_created" {
  for_each = local.created_indexes

  database   = google_firestore_database.main.name
  collection = local.tickets_collection

  fields {
    field_path = each.value
    order      = "ASCENDING"
  }
  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }
}

# GET /tickets?status=...: the newest tickets of one status, for the review console.
resource "google_firestore_index" "tickets_recent" {
  database   = google_firestore_database.main.name
  collection = local.tickets_collection

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_at"
    order      = "DESCENDING"
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
