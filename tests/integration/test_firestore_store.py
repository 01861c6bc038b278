"""FirestoreTicketStore against the real Firestore emulator."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest
from google.cloud import firestore

from tests.fakes import FakeClock
from triage import domain
from triage.adapters.firestore import FirestoreTicketStore
from triage.domain import Classification, Labels, Path, Status, Ticket
from triage.errors import StoreUnavailable, TicketBusy, UnknownTicket


@pytest.fixture
def store(emulator_env) -> FirestoreTicketStore:
    client = firestore.Client(project=emulator_env.config.project)
    return FirestoreTicketStore(client, f"tickets-{uuid.uuid4().hex[:8]}")


def new_ticket(ticket_id: str | None = None, **changes) -> Ticket:
    now = FakeClock()()
    ticket = Ticket(
        ticket_id=ticket_id or uuid.uuid4().hex,
        tenant="default",
        title="VPN down",
        description="ünïcode ✓ and a very long line " * 20,
        created_at=now,
        updated_at=now,
        metadata={"nested": [[1, 2], {"deep": [None, True]}]},
    )
    return dataclasses.replace(ticket, **changes)


def test_a_ticket_survives_the_round_trip(store: FirestoreTicketStore):
    ticket = new_ticket()
    assert store.create(ticket) is None
    loaded = store.get(ticket.ticket_id)
    assert loaded == ticket  # arrays of arrays included: metadata is kept as JSON text


def test_creating_an_existing_ticket_returns_the_stored_one(store: FirestoreTicketStore):
    ticket = new_ticket()
    store.create(ticket)
    assert store.create(dataclasses.replace(ticket, title="changed")) == ticket
    assert store.get(ticket.ticket_id).title == "VPN down"


def test_update_applies_a_transition_and_unchanged_writes_nothing(store: FirestoreTicketStore):
    clock = FakeClock()
    ticket = new_ticket()
    store.create(ticket)
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", Path.CLASSIFIER, "m")
    done = store.update(ticket.ticket_id, lambda t: domain.complete(t, answer, now=clock()))
    assert done.status is Status.CLASSIFIED_BY_AI
    assert store.get(ticket.ticket_id) == done
    with pytest.raises(domain.Unchanged):
        store.update(ticket.ticket_id, lambda t: domain.complete(t, answer, now=clock()))
    assert store.get(ticket.ticket_id) == done


def test_update_of_a_missing_ticket_is_unknown(store: FirestoreTicketStore):
    with pytest.raises(UnknownTicket):
        store.update("missing", lambda t: t)


def test_concurrent_claims_let_exactly_one_delivery_through(store: FirestoreTicketStore):
    clock = FakeClock()
    ticket = new_ticket()
    store.create(ticket)
    results: list[str] = []

    def deliver() -> None:
        try:
            store.update(ticket.ticket_id, lambda t: domain.claim(t, now=clock(), lease_seconds=60, max_attempts=5))
            results.append("claimed")
        except TicketBusy:
            results.append("busy")

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["busy"] * 7 + ["claimed"]
    assert store.get(ticket.ticket_id).attempts == 1


def test_mark_published_touches_only_its_fields(store: FirestoreTicketStore):
    ticket = new_ticket()
    store.create(ticket)
    later = FakeClock()
    later.advance(5)
    store.mark_published(ticket.ticket_id, later())
    assert store.get(ticket.ticket_id) == dataclasses.replace(ticket, published=True, updated_at=later())


def test_delete(store: FirestoreTicketStore):
    ticket = new_ticket()
    store.create(ticket)
    store.delete(ticket.ticket_id)
    assert store.get(ticket.ticket_id) is None


def test_an_unreachable_firestore_is_store_unavailable(monkeypatch):
    from emulators.stack import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreTicketStore(firestore.Client(project="triage-test"), "tickets", timeout_seconds=1.0)
    with pytest.raises(StoreUnavailable):
        store.get("anything")


def test_find_filters_and_orders_by_last_update(store: FirestoreTicketStore):
    clock = FakeClock()
    tickets = []
    for _ in range(4):
        clock.advance(60)
        tickets.append(new_ticket(updated_at=clock()))
        store.create(tickets[-1])
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", Path.CLASSIFIER, "m")
    store.update(
        tickets[1].ticket_id,
        lambda t: dataclasses.replace(
            domain.complete(t, dataclasses.replace(answer, remembered=False), now=t.updated_at)
        ),
    )
    store.update(tickets[2].ticket_id, lambda t: domain.request_writeback(t, now=t.updated_at))
    pending = store.find(status=Status.PENDING, limit=10)
    assert [t.ticket_id for t in pending] == [tickets[0].ticket_id, tickets[2].ticket_id, tickets[3].ticket_id]
    old = store.find(status=Status.PENDING, updated_before=tickets[3].updated_at, limit=10)
    assert [t.ticket_id for t in old] == [tickets[0].ticket_id, tickets[2].ticket_id]
    assert [t.ticket_id for t in store.find(remembered=False, limit=10)] == [tickets[1].ticket_id]
    waiting = store.find(writeback_status=domain.WritebackStatus.PENDING, limit=10)
    assert [t.ticket_id for t in waiting] == [tickets[2].ticket_id]
    assert len(store.find(status=Status.PENDING, limit=1)) == 1
