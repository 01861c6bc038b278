"""The ``process_ticket`` entry point under functions-framework, fed the three shapes a
Pub/Sub message reaches it in: Eventarc's binary and structured CloudEvents, and the
raw push envelope the emulator (or a direct push subscription) sends."""

from __future__ import annotations

import base64
import json

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.fakes import RecordingPublisher
from tests.harness import Engine
from triage import bootstrap
from triage.domain import Labels, Status
from triage.errors import ClassifierUnavailable

TOPIC = "//pubsub.googleapis.com/projects/triage-local/topics/tickets"


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


def send(worker: Engine, payload: object, form: str):
    if form == "push":
        return worker.worker.post("/projects/triage-local/topics/tickets", json=pubsub_data(payload))
    headers, body = (to_binary if form == "binary" else to_structured)(event(payload))
    return worker.worker.post("/", headers=headers, data=body)


@pytest.fixture
def worker(taxonomy) -> Engine:
    return Engine(taxonomy, labels=Labels("Network", "High", "Network Operations"))


@pytest.mark.parametrize("form", ["binary", "structured", "push"])
def test_a_ticket_message_is_classified_and_acknowledged(worker: Engine, form):
    ticket_id = worker.pending("VPN drops", description="every 5 minutes")
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
def test_a_malformed_message_is_acknowledged_without_retries(worker: Engine, payload):
    assert send(worker, payload, "binary").status_code == 200
    assert worker.classifier.requests == []


def test_a_message_for_an_unknown_ticket_is_acknowledged(worker: Engine):
    assert send(worker, {"ticket_id": "missing", "kind": "classify"}, "structured").status_code == 200


def test_a_transient_fault_is_a_500_so_pubsub_redelivers(worker: Engine):
    ticket_id = worker.pending("VPN drops", description="every 5 minutes")
    worker.classifier.raise_next.append(ClassifierUnavailable("429 after retries"))
    assert send(worker, {"ticket_id": ticket_id}, "push").status_code == 500
    assert worker.store.tickets[ticket_id].status is Status.PENDING
    assert send(worker, {"ticket_id": ticket_id}, "push").status_code == 200
    assert worker.store.tickets[ticket_id].status is Status.CLASSIFIED_BY_AI


def test_a_warm_up_message_loads_the_model_and_touches_no_ticket(worker: Engine):
    assert send(worker, {"kind": "warm_up"}, "push").status_code == 200
    assert worker.store.tickets == {}


def test_a_scheduled_reconcile_message_republishes_stuck_tickets(worker: Engine):
    """Cloud Scheduler publishes ``{"kind": "reconcile"}`` to the tickets topic in production."""
    publisher = RecordingPublisher()
    bootstrap.override(publisher=publisher)
    stuck = worker.pending("VPN drops", description="every 5 minutes")
    worker.clock.advance(bootstrap.settings().reconcile_after_seconds + 1)
    fresh = worker.pending("VPN drops", description="every 5 minutes")
    publisher.messages.clear()  # what the reconcile publishes, not the two submissions
    assert send(worker, {"kind": "reconcile"}, "push").status_code == 200
    assert (stuck, "classify") in publisher.messages
    assert (fresh, "classify") not in publisher.messages
    assert worker.store.tickets[stuck].status is Status.PENDING
