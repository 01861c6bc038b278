"""Stopped work restarted, boundedly; dead letters; Failed tickets replayed."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from tests.harness import Engine, error_of
from triage import domain, service
from triage.domain import Labels, Status, Submission, WritebackStatus
from triage.errors import ClassifierUnavailable, PublishFailed

NETWORK = Labels("Network", "High", "Network Operations")


def test_a_stuck_ticket_is_republished_a_bounded_number_of_times_then_fails(taxonomy):
    engine = Engine(taxonomy)
    store, publisher, clock = engine.store, engine.publisher, engine.clock
    stuck = engine.pending("VPN down")
    publisher.messages.clear()  # only what the reconciler publishes

    def reconcile() -> service.ReconcileReport:
        engine.set(recovery=service.RecoveryOptions(older_than=timedelta(minutes=5), max_republish=3))
        return engine.reconcile()

    assert reconcile().republished == []  # not old enough yet
    for round_number in range(1, 4):
        clock.advance(600)
        fresh = engine.pending(f"Printer jam {round_number}")
        report = reconcile()
        assert stuck in report.republished and fresh not in report.republished and report.failed == []
        assert store.tickets[stuck].republished == round_number
        assert store.tickets[fresh].republished == 0
    clock.advance(600)
    report = reconcile()
    assert stuck in report.failed
    assert store.tickets[stuck].status is Status.FAILED
    assert store.tickets[stuck].last_error.startswith("stuck: re-sent 3 times")
    assert publisher.messages.count((stuck, "classify")) == 3


def test_a_ticket_whose_request_died_before_its_publish_is_published_by_the_reconciler(taxonomy):
    """Ingest records nothing after the publish: a request that died between the store and the
    publish (and whose caller never retried) leaves a Pending ticket the reconciler sends."""
    engine = Engine(taxonomy, labels=NETWORK)
    engine.publisher.failures = 1
    engine.store.fail_next.append("delete")  # the undo fails too, as if the process had died
    with pytest.raises(PublishFailed):
        engine.pending("VPN down")
    (orphan,) = engine.store.tickets
    assert engine.publisher.messages == []
    engine.clock.advance(600)
    report = engine.reconcile(older_than=timedelta(minutes=5))
    assert report.republished == [orphan] and engine.publisher.messages == [(orphan, "classify")]
    assert engine.process(orphan).action is service.Action.CLASSIFIED


def test_reconcile_requeues_pending_write_backs_and_unremembered_tickets(taxonomy):
    engine = Engine(taxonomy, labels=NETWORK, writeback_sources=frozenset({"jira"}))
    store, publisher, clock, memory, writeback = (
        engine.store,
        engine.publisher,
        engine.clock,
        engine.memory,
        engine.queue,
    )
    submission = Submission(title="VPN down", source="jira", external_id="7")
    ticket_id = engine.ingest(submission).ticket.ticket_id
    memory.down = True
    engine.process(ticket_id)
    assert store.tickets[ticket_id].classification.remembered is False
    clock.advance(600)
    report = engine.reconcile(older_than=timedelta(minutes=5))
    assert report.remembered == [ticket_id] and report.writebacks == [ticket_id]
    assert publisher.messages[-1] == (ticket_id, "remember")
    assert writeback.publisher.messages[-1] == (ticket_id, "write_back")
    memory.down = False
    engine.remember(ticket_id)
    assert ticket_id in memory.stored
    assert store.tickets[ticket_id].classification.remembered is True
    assert engine.reconcile(older_than=timedelta(minutes=5)).remembered == []


def test_failed_tickets_are_replayed_with_fresh_attempts(taxonomy):
    engine = Engine(taxonomy, labels=NETWORK, options=service.ProcessingOptions(max_delivery_attempts=1))
    store, publisher, classifier = engine.store, engine.publisher, engine.classifier
    ticket_id = engine.pending("VPN down")
    publisher.messages.clear()
    classifier.raise_next.append(ClassifierUnavailable("down"))
    try:
        engine.process(ticket_id)
    except ClassifierUnavailable:
        pass
    assert engine.process(ticket_id).action == "failed"
    assert engine.replay(None) == [ticket_id]
    assert store.tickets[ticket_id].status is Status.PENDING and store.tickets[ticket_id].attempts == 0
    assert publisher.messages == [(ticket_id, "classify")]
    assert engine.process(ticket_id).action == "classified"
    assert engine.replay([ticket_id, "nope"]) == []


def dead_lettered(ticket_id: str, kind: str, deliveries: int) -> dict:
    data = base64.b64encode(json.dumps({"ticket_id": ticket_id, "kind": kind}).encode()).decode()
    return {
        "message": {
            "data": data,
            "messageId": "9",
            "attributes": {
                "CloudPubSubDeadLetterSourceDeliveryCount": str(deliveries),
                "CloudPubSubDeadLetterSourceSubscription": "tickets-worker",
            },
        },
        "subscription": "projects/p/subscriptions/tickets-dead-letter-sub",
    }


def test_a_dead_lettered_message_fails_its_ticket_with_the_reason(taxonomy):
    engine = Engine(taxonomy)
    store, clock = engine.store, engine.clock
    ticket_id = engine.pending("VPN down")
    store.update(ticket_id, lambda t: domain.ticket.note_error(t, "ClassifierUnavailable: 503", now=clock()))
    client = engine.worker
    response = client.post("/projects/p/topics/tickets-dead-letter", json=dead_lettered(ticket_id, "classify", 10))
    assert response.status_code == 200
    ticket = store.tickets[ticket_id]
    assert ticket.status is Status.FAILED
    assert ticket.last_error == "dead-lettered after 10 deliveries; last error: ClassifierUnavailable: 503"
    # A dead-lettered message for a ticket that got its answer meanwhile changes nothing.
    assert client.post("/x", json=dead_lettered(ticket_id, "classify", 10)).status_code == 200
    assert store.tickets[ticket_id] == ticket


def test_a_dead_lettered_write_back_is_recorded_as_failed(taxonomy):
    engine = Engine(taxonomy)
    store, clock = engine.store, engine.clock
    ticket_id = engine.pending("VPN down")
    store.update(ticket_id, lambda t: domain.writeback.request_writeback(t, now=clock()))
    outcome = service.dead_letter(ticket_id, "write_back", 10, store=store, clock=clock)
    assert outcome.action == "dead_lettered"
    assert store.tickets[ticket_id].writeback.status is WritebackStatus.FAILED
    assert store.tickets[ticket_id].writeback.last_error == "dead-lettered after 10 deliveries"


def test_the_admin_routes(taxonomy, monkeypatch):
    monkeypatch.setenv("API_KEYS", "admin-key=admin")
    api = Engine(taxonomy)
    headers = {"X-API-Key": "admin-key"}
    ticket_id = api.post("/classify", {"title": "VPN down"}, headers).get_json()["ticket_id"]
    api.store.update(ticket_id, lambda t: domain.ticket.fail(t, "InvalidModelOutput: not JSON", now=api.clock()))
    listed = api.client.get("/admin/failed?limit=5", headers=headers).get_json()["tickets"]
    assert [(t["ticket_id"], t["last_error"]) for t in listed] == [(ticket_id, "InvalidModelOutput: not JSON")]
    assert api.post("/admin/replay", {}, headers).status_code == 422
    # JSON types are taken as they are: a boolean is no count, a number no boolean (schemathesis'
    # ST201 found `{"limit": true}` accepted as 1).
    for path, body in (
        ("/admin/reconcile", {"limit": True}),
        ("/admin/reconcile", {"older_than_seconds": "60"}),
        ("/admin/replay", {"all": 1}),
        ("/admin/replay", {"ticket_ids": [ticket_id], "limit": 5.5}),
    ):
        response = api.post(path, body, headers)
        assert response.status_code == 422 and error_of(response)["code"] == "validation_failed", (path, body)
    # ...and 382.0 is an integer, as JSON Schema says (ST202 found it refused).
    assert api.post("/admin/reconcile", {"limit": 382.0, "older_than_seconds": 999999}, headers).status_code == 200
    assert api.store.tickets[ticket_id].status is Status.FAILED  # nothing happened
    replayed = api.post("/admin/replay", {"ticket_ids": [ticket_id]}, headers).get_json()
    assert replayed == {"replayed": [ticket_id]}
    api.clock.advance(3600)
    report = api.client.post("/admin/reconcile", headers=headers).get_json()
    assert report["republished"] == 1 and report["ticket_ids"]["republished"] == [ticket_id]
    report = api.post("/admin/reconcile", {"older_than_seconds": 999999}, headers).get_json()
    assert report["republished"] == 0
