from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.fakes import FakeClock
from triage import domain
from triage.adapters.firestore_records import ticket_from_document, ticket_to_document
from triage.domain import AnswerPath, Classification, Labels, Status, Taxonomy, Ticket
from triage.errors import InvalidLabels, TicketBusy
from triage.service import ProcessingOptions

SOFTWARE = Labels("Software", "Medium", "Application Support")
ACCESS = Labels("Access", "High", "Identity & Access Management")


def make_ticket(**changes) -> Ticket:
    now = FakeClock()()
    return dataclasses.replace(
        Ticket(
            ticket_id="t1", tenant="default", title="VPN down", description="since 9am", created_at=now, updated_at=now
        ),
        **changes,
    )


def answer(path: AnswerPath = AnswerPath.CLASSIFIER, labels: Labels = SOFTWARE) -> Classification:
    return Classification(labels=labels, confidence=0.7, rationale="because", path=path, classifier="x")


def test_claim_takes_a_lease_and_counts_the_attempt():
    clock = FakeClock()
    claimed = domain.ticket.claim(make_ticket(), now=clock(), lease_seconds=60, max_attempts=3)
    assert claimed.attempts == 1
    assert claimed.lease_expires_at == clock() + timedelta(seconds=60)
    assert claimed.status is Status.PENDING


def test_claim_refuses_a_ticket_that_already_has_its_answer():
    done = domain.ticket.complete(make_ticket(), answer(), now=FakeClock()())
    with pytest.raises(domain.Unchanged, match="already Classified_By_AI"):
        domain.ticket.claim(done, now=FakeClock()(), lease_seconds=60, max_attempts=3)


def test_claim_during_another_delivery_is_busy_until_the_lease_expires():
    clock = FakeClock()
    claimed = domain.ticket.claim(make_ticket(), now=clock(), lease_seconds=60, max_attempts=3)
    with pytest.raises(TicketBusy):
        domain.ticket.claim(claimed, now=clock(), lease_seconds=60, max_attempts=3)
    clock.advance(61)
    assert domain.ticket.claim(claimed, now=clock(), lease_seconds=60, max_attempts=3).attempts == 2


def test_claim_after_the_last_attempt_fails_the_ticket_with_its_last_error():
    ticket = make_ticket(attempts=3, last_error="ClassifierUnavailable: 429")
    failed = domain.ticket.claim(ticket, now=FakeClock()(), lease_seconds=60, max_attempts=3)
    assert failed.status is Status.FAILED
    assert failed.last_error == "gave up after 3 attempts; last error: ClassifierUnavailable: 429"


@pytest.mark.parametrize(
    ("path", "status"),
    [(AnswerPath.MEMORY, Status.CLASSIFIED_BY_CACHE), (AnswerPath.CLASSIFIER, Status.CLASSIFIED_BY_AI)],
)
def test_complete_sets_the_status_by_the_path_taken(path, status):
    clock = FakeClock()
    done = domain.ticket.complete(make_ticket(lease_expires_at=clock()), answer(path), now=clock())
    assert done.status is status
    assert done.classification.classified_at == clock()
    assert done.lease_expires_at is None


def test_a_pending_ticket_has_nothing_to_review():
    with pytest.raises(domain.Unchanged):
        domain.ticket.correct(make_ticket(), ACCESS, reviewer="ana", comment=None, now=FakeClock()())


def test_the_same_labels_are_a_confirmation_not_a_correction():
    clock = FakeClock()
    classified = domain.ticket.complete(make_ticket(), answer(), now=clock())
    confirmed = domain.ticket.correct(classified, classified.labels, reviewer="ana", comment=None, now=clock())
    assert confirmed.status is Status.VERIFIED_BY_HUMAN and confirmed.corrections[-1].confirmed
    corrected = domain.ticket.correct(confirmed, ACCESS, reviewer="bo", comment=None, now=clock())
    assert corrected.status is Status.CORRECTED_BY_HUMAN and not corrected.corrections[-1].confirmed
    # Confirming a human's correction keeps it a correction.
    again = domain.ticket.correct(corrected, ACCESS, reviewer="cy", comment=None, now=clock())
    assert again.status is Status.CORRECTED_BY_HUMAN


def test_a_late_answer_never_overwrites_a_human_verdict():
    classified = domain.ticket.complete(make_ticket(), answer(), now=FakeClock()())
    corrected = domain.ticket.correct(classified, ACCESS, reviewer="ana", comment=None, now=FakeClock()())
    with pytest.raises(domain.Unchanged):
        domain.ticket.complete(corrected, answer(), now=FakeClock()())
    with pytest.raises(domain.Unchanged):
        domain.ticket.fail(corrected, "late failure", now=FakeClock()())


def test_corrections_keep_their_history_and_the_labels_they_replaced():
    clock = FakeClock()
    classified = domain.ticket.complete(make_ticket(), answer(), now=clock())
    first = domain.ticket.correct(classified, ACCESS, reviewer="ana", comment="wrong team", now=clock())
    second = domain.ticket.correct(first, SOFTWARE, reviewer="bo", comment=None, now=clock())
    assert second.status is Status.CORRECTED_BY_HUMAN
    assert [c.previous for c in second.corrections] == [SOFTWARE, ACCESS]
    assert second.labels == SOFTWARE
    assert second.classification.labels == SOFTWARE  # the model's answer stays on record


def test_record_round_trip_keeps_every_field():
    clock = FakeClock()
    ticket = domain.ticket.correct(
        domain.ticket.complete(make_ticket(metadata={"a": [1, [2]]}), answer(AnswerPath.MEMORY), now=clock()),
        ACCESS,
        reviewer="ana",
        comment="c",
        now=clock(),
    )
    # What Firestore stores (the adapter's record mapping) reads back as the same ticket.
    assert ticket_from_document(ticket_to_document(ticket)) == ticket


def test_model_text_is_title_then_description_cut_to_the_limit():
    ticket = make_ticket(title="  VPN down ", description=" since 9am ")
    assert ProcessingOptions(model_text_max_chars=100).model_text(ticket) == "VPN down\nsince 9am"
    assert ProcessingOptions(model_text_max_chars=4).model_text(ticket) == "VPN "
    assert make_ticket(description="").text == "VPN down"


def test_taxonomy_check_names_every_label_outside_it(taxonomy: Taxonomy):
    assert taxonomy.check(SOFTWARE) == SOFTWARE
    with pytest.raises(InvalidLabels) as raised:
        taxonomy.check(Labels("Plumbing", "Medium", "Nobody"))
    assert set(raised.value.details) == {"category", "assignment_group"}


def test_default_taxonomy_covers_the_basics(taxonomy: Taxonomy):
    assert {"Access", "Hardware", "Software", "Network"} <= set(taxonomy.category_names)
    for category in taxonomy.categories:
        assert category.assignment_group in taxonomy.assignment_group_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default_priority": "Urgent"}, "default_priority"),
        ({"categories": []}, "at least one category"),
        ({"assignment_groups": [{"name": "X"}]}, "unknown assignment group"),
    ],
)
def test_taxonomy_rejects_inconsistent_files(change, message):
    data = {
        "categories": [{"name": "Access", "description": "d", "assignment_group": "IAM"}],
        "priorities": [{"name": "Low", "description": "d"}],
        "assignment_groups": [{"name": "IAM"}],
        "default_priority": "Low",
    } | change
    with pytest.raises(ValueError, match=message):
        Taxonomy.from_dict(data)
