"""A baseline for the ingest benchmark: the engine's two primitives (create the ticket's
document, publish its message and wait for the acknowledgement) behind functions-framework,
served exactly like ``api``, and nothing else: no validation, no authentication, no idempotency
or error handling. What any function served this way can reach; the engine's distance from it
is the cost of its own code."""

import os
import uuid
from datetime import UTC, datetime

import functions_framework
from google.cloud import firestore, pubsub_v1

from triage.adapters.firestore_records import ticket_to_document
from triage.domain import Submission, new_ticket

PROJECT = os.environ["GOOGLE_CLOUD_PROJECT"]
# The clients as the engine makes them (the publisher's batch settings included), before the first request.
CLIENT = firestore.Client(project=PROJECT)
PUBLISHER = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002))
TOPIC = PUBLISHER.topic_path(PROJECT, os.environ["TICKETS_TOPIC"])
COLLECTION = CLIENT.collection(os.environ["TICKETS_COLLECTION"])


@functions_framework.http
def primitives(request):
    if request.path == "/healthz":
        return "ok"
    ticket_id = uuid.uuid4().hex
    ticket = new_ticket(Submission(**request.get_json()), ticket_id=ticket_id, now=datetime.now(UTC))
    COLLECTION.document(ticket_id).create(ticket_to_document(ticket))
    message = f'{{"ticket_id":"{ticket_id}","kind":"classify"}}'.encode()
    PUBLISHER.publish(TOPIC, message, ticket_id=ticket_id, kind="classify").result(timeout=30)
    return {"ticket_id": ticket_id}, 202
