"""The ``process_ticket`` entry point under functions-framework, fed the three shapes a
Pub/Sub message reaches it in: Eventarc's binary and structured CloudEvents, and the
raw push envelope the emulator (or a direct push subscription) sends."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.fakes import (
    FakeClock,
    HashingEmbedder,
    InMemoryMemory,
    InMemoryTicketStore,
    RecordingPublisher,
    ScriptedClassifier,
)
from triage import bootstrap, service
from triage.domain import Labels, Status
from triage.errors import ClassifierUnavailable

MAIN = str(Path(__file__).parents[2] / "functions" / "main.py")
TOPIC = "//pubsub.googleapis.com/projects/triage-local/topics/tickets"


class Worker:
    def __init__(self, taxonomy):
        self.store = InMemoryTicketStore()
        self.memory = InMemoryMemory()
        self.classifier = ScriptedClassifier(Labels("Network", "High", "Network Operations"))
        self.clock = FakeClock()
        bootstrap.override(
            store=self.store,
            memory=self.memory,
            embedder=HashingEmbedder(),
            classifier=self.classifier,
            clock=self.clock,
            taxonomy=taxonomy,
        )
        self.client = functions_framework.create_app("process_ticket", MAIN, "cloudevent").test_client()

    def new_ticket(self) -> str:
        submission = service.Submission(title="VPN drops", description="every 5 minutes")
        return service.ingest(
            submission, store=self.store, publisher=RecordingPublisher(), clock=self.clock
        ).ticket.ticket_id


def pubsub_data(payload: object) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "message": {"data": base64.b64encode(raw).decode(), "messageId": "1", "publishTime": "2026-11-24T09:00:00Z"},
        "subscription": "projects/triage-local/subscriptions/tickets-worker",
    }


def event(payload: object) -> CloudEvent:
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": TOPIC, "id": "evt-1"},
        pubsub_data(payload),
    )


def send(worker: Worker, payload: object, form: str):
    if form == "push":
        return worker.client.post("/projects/triage-local/topics/tickets", json=pubsub_data(payload))
    headers, body = (to_binary if form == "binary" else to_structured)(event(payload))
    return worker.client.post("/", headers=headers, data=body)


@pytest.fixture
def worker(taxonomy) -> Worker:
    return Worker(taxonomy)


@pytest.mark.parametrize("form", ["binary", "structured", "push"])
def test_a_ticket_message_is_classified_and_acknowledged(worker: Worker, form):
    ticket_id = worker.new_ticket()
    response = send(worker, {"ticket_id": ticket_id, "kind": "classify"}, form)
    assert response.status_code == 200
    ticket = worker.store.tickets[ticket_id]
    assert ticket.status is Status.CLASSIFIED_BY_AI
    assert ticket.labels.category == "Network"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        {"kind": "classify"},
        {"ticket_id": "../x", "kind": "classify"},
        {"ticket_id": "a", "kind": "explode"},
        [1],
    ],
)
def test_a_malformed_message_is_acknowledged_without_retries(worker: Worker, payload):
    assert send(worker, payload, "binary").status_code == 200
    assert worker.classifier.requests == []


def test_a_message_for_an_unknown_ticket_is_acknowledged(worker: Worker):
    assert send(worker, {"ticket_id": "missing", "kind": "classify"}, "structured").status_code == 200


def test_a_transient_fault_is_a_500_so_pubsub_redelivers(worker: Worker):
    ticket_id = worker.new_ticket()
    worker.classifier.raise_next.append(ClassifierUnavailable("429 after retries"))
    assert send(worker, {"ticket_id": ticket_id}, "push").status_code == 500
    assert worker.store.tickets[ticket_id].status is Status.PENDING
    assert send(worker, {"ticket_id": ticket_id}, "push").status_code == 200
    assert worker.store.tickets[ticket_id].status is Status.CLASSIFIED_BY_AI


def test_a_warm_up_message_loads_the_model_and_touches_no_ticket(worker: Worker):
    assert send(worker, {"kind": "warm_up"}, "push").status_code == 200
    assert worker.store.tickets == {}


def test_a_scheduled_reconcile_message_republishes_stuck_tickets(worker: Worker):
    """Cloud Scheduler publishes ``{"kind": "reconcile"}`` to the tickets topic in production."""
    publisher = RecordingPublisher()
    bootstrap.override(publisher=publisher)
    stuck = worker.new_ticket()
    worker.clock.advance(bootstrap.settings().reconcile_after_seconds + 1)
    fresh = worker.new_ticket()
    assert send(worker, {"kind": "reconcile"}, "push").status_code == 200
    assert (stuck, "classify") in publisher.messages
    assert (fresh, "classify") not in publisher.messages
    assert worker.store.tickets[stuck].status is Status.PENDING
