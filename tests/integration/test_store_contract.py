"""The ticket store's contract, run against the in-memory fake the unit tests use and against
FirestoreTicketStore on the real Firestore emulator: the same cases, so the fake cannot drift
from what it stands for."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest
from google.cloud import firestore

from tests.fakes import FakeClock, InMemoryTicketStore
from triage import domain
from triage.adapters.firestore import FirestoreTicketStore
from triage.domain import AnswerPath, Classification, Labels, Status, Ticket
from triage.errors import StoreUnavailable, TicketBusy, UnknownTicket

Store = FirestoreTicketStore | InMemoryTicketStore


@pytest.fixture(params=["in-memory fake", "Firestore emulator"])
def store(request) -> FirestoreTicketStore | InMemoryTicketStore:
    if request.param == "in-memory fake":
        return InMemoryTicketStore()
    emulator_env = request.getfixturevalue("emulator_env")
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


def test_a_ticket_survives_the_round_trip(store: Store):
    ticket = new_ticket()
    assert store.create(ticket) is None
    loaded = store.get(ticket.ticket_id)
    assert loaded == ticket  # arrays of arrays included: metadata is kept as JSON text


def test_creating_an_existing_ticket_returns_the_stored_one(store: Store):
    ticket = new_ticket()
    store.create(ticket)
    assert store.create(dataclasses.replace(ticket, title="changed")) == ticket
    assert store.get(ticket.ticket_id).title == "VPN down"


def test_update_applies_a_transition_and_unchanged_writes_nothing(store: Store):
    clock = FakeClock()
    ticket = new_ticket()
    store.create(ticket)
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", AnswerPath.CLASSIFIER, "m")
    done = store.update(ticket.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))
    assert done.status is Status.CLASSIFIED_BY_AI
    assert store.get(ticket.ticket_id) == done
    with pytest.raises(domain.Unchanged):
        store.update(ticket.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))
    assert store.get(ticket.ticket_id) == done


def test_update_of_a_missing_ticket_is_unknown(store: Store):
    with pytest.raises(UnknownTicket):
        store.update("missing", lambda t: t)


def test_concurrent_claims_let_exactly_one_delivery_through(store: Store):
    clock = FakeClock()
    ticket = new_ticket()
    store.create(ticket)
    results: list[str] = []

    def deliver() -> None:
        try:
            store.update(
                ticket.ticket_id, lambda t: domain.ticket.claim(t, now=clock(), lease_seconds=60, max_attempts=5)
            )
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


def test_an_update_after_this_store_wrote_needs_no_read_and_still_loses_to_a_write_in_between(
    emulator_env, monkeypatch
):  # the adapter's own
    """The store starts a change from the version it wrote last (one write, no read); a write
    made since by another instance (a human's correction, another delivery) still wins."""
    from google.cloud.firestore_v1.document import DocumentReference

    client = firestore.Client(project=emulator_env.config.project)
    collection = f"tickets-{uuid.uuid4().hex[:8]}"
    worker, api = FirestoreTicketStore(client, collection), FirestoreTicketStore(client, collection)
    clock = FakeClock()
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", AnswerPath.CLASSIFIER, "m")

    def claim(ticket_id: str) -> Ticket:
        return worker.update(ticket_id, lambda t: domain.ticket.claim(t, now=clock(), lease_seconds=60, max_attempts=5))

    reads = []
    original_get = DocumentReference.get
    monkeypatch.setattr(
        DocumentReference, "get", lambda self, *a, **k: reads.append(self.id) or original_get(self, *a, **k)
    )

    alone, overtaken, deleted = new_ticket(), new_ticket(), new_ticket()
    for ticket in (alone, overtaken, deleted):
        worker.create(ticket)
        claim(ticket.ticket_id)
    reads.clear()
    done = worker.update(alone.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))
    assert reads == [] and api.get(alone.ticket_id) == done

    api.update(overtaken.ticket_id, lambda t: domain.ticket.fail(t, "failed elsewhere", now=clock()))
    with pytest.raises(domain.Unchanged):
        worker.update(overtaken.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))
    assert api.get(overtaken.ticket_id).status is Status.FAILED

    api.delete(deleted.ticket_id)
    with pytest.raises(UnknownTicket):
        worker.update(deleted.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))


def test_consecutive_updates_by_one_store_apply_in_order(store: Store):
    clock = FakeClock()
    ticket = new_ticket()
    store.create(ticket)
    store.update(ticket.ticket_id, lambda t: domain.ticket.claim(t, now=clock(), lease_seconds=60, max_attempts=5))
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", AnswerPath.CLASSIFIER, "m")
    done = store.update(ticket.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))
    assert done.attempts == 1 and done.lease_expires_at is None
    assert store.get(ticket.ticket_id) == done
    with pytest.raises(domain.Unchanged):  # the version it knows is final: decided on the ticket as read
        store.update(ticket.ticket_id, lambda t: domain.ticket.complete(t, answer, now=clock()))


def test_delete(store: Store):
    ticket = new_ticket()
    store.create(ticket)
    store.delete(ticket.ticket_id)
    assert store.get(ticket.ticket_id) is None


def test_an_unreachable_firestore_is_store_unavailable(monkeypatch):  # the adapter's own
    from emulators.stack import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreTicketStore(firestore.Client(project="triage-test"), "tickets", timeout_seconds=1.0)
    with pytest.raises(StoreUnavailable):
        store.get("anything")


def test_warm_up_reads_nothing_that_exists_and_gives_up_on_an_unreachable_firestore(emulator_env, monkeypatch):
    store = FirestoreTicketStore(firestore.Client(project=emulator_env.config.project), "tickets-warm")
    store.warm_up()
    assert store.get("_warm_up") is None
    from emulators.stack import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    with pytest.raises(Exception):  # noqa: B017 (the caller logs whatever it is)
        FirestoreTicketStore(firestore.Client(project="triage-test"), "tickets").warm_up()


def test_find_filters_and_orders_by_last_update(store: Store):
    clock = FakeClock()
    tickets = []
    for _ in range(4):
        clock.advance(60)
        tickets.append(new_ticket(updated_at=clock()))
        store.create(tickets[-1])
    answer = Classification(Labels("Network", "High", "Network Operations"), 0.9, "r", AnswerPath.CLASSIFIER, "m")
    store.update(
        tickets[1].ticket_id,
        lambda t: dataclasses.replace(
            domain.ticket.complete(t, dataclasses.replace(answer, remembered=False), now=t.updated_at)
        ),
    )
    store.update(tickets[2].ticket_id, lambda t: domain.writeback.request_writeback(t, now=t.updated_at))
    pending = store.find(status=Status.PENDING, limit=10)
    assert [t.ticket_id for t in pending] == [tickets[0].ticket_id, tickets[2].ticket_id, tickets[3].ticket_id]
    old = store.find(status=Status.PENDING, updated_before=tickets[3].updated_at, limit=10)
    assert [t.ticket_id for t in old] == [tickets[0].ticket_id, tickets[2].ticket_id]
    assert [t.ticket_id for t in store.find(remembered=False, limit=10)] == [tickets[1].ticket_id]
    waiting = store.find(writeback_status=domain.WritebackStatus.PENDING, limit=10)
    assert [t.ticket_id for t in waiting] == [tickets[2].ticket_id]
    assert len(store.find(status=Status.PENDING, limit=1)) == 1


def test_aggregations_count_sum_and_time_tickets_whether_classified_or_not(store: Store):
    clock = FakeClock()
    since = clock()
    labels = Labels("Network", "High", "Network Operations")
    by_classifier = Classification(labels, 0.9, "r", AnswerPath.CLASSIFIER, "m", input_tokens=100, output_tokens=20)
    from_memory = Classification(labels, 0.98, "r", AnswerPath.MEMORY, matched_ticket_id="x")
    tickets = [new_ticket(created_at=clock(), updated_at=clock()) for _ in range(3)]
    for ticket in tickets:
        store.create(ticket)
    clock.advance(2)
    store.update(tickets[0].ticket_id, lambda t: domain.ticket.complete(t, by_classifier, now=clock()))
    clock.advance(1)
    store.update(tickets[1].ticket_id, lambda t: domain.ticket.complete(t, from_memory, now=clock()))
    # tickets[2] is still Pending: it has no time to classification, and that is no error.
    assert store.count(since=since, status=Status.PENDING) == 1
    assert store.count(since=since, path=AnswerPath.MEMORY) == 1
    assert store.count(since=since, path=AnswerPath.CLASSIFIER) == 1
    assert store.count(since=since, until=since) == 0
    assert store.token_totals(since=since) == (1, 100, 20)
    assert sorted(store.classification_times(since=since)) == [2000.0, 3000.0]
    recent = store.recent(limit=2)
    assert [t.ticket_id for t in recent] == [tickets[1].ticket_id, tickets[0].ticket_id]
    assert [t.ticket_id for t in store.recent(status=Status.PENDING)] == [tickets[2].ticket_id]


def test_a_delivery_id_is_claimed_once_until_released(store: Store):
    assert store.claim_delivery("jira", "d-1") is True
    assert store.claim_delivery("jira", "d-1") is False
    assert store.claim_delivery("servicenow", "d-1") is True  # per source
    store.release_delivery("jira", "d-1")
    assert store.claim_delivery("jira", "d-1") is True
