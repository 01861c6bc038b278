from __future__ import annotations

import dataclasses

import pytest

from tests.fakes import ScriptedClassifier
from tests.harness import Engine
from triage import domain
from triage.domain import Labels, LabelSource, MemoryEntry, Status, Submission, Taxonomy
from triage.errors import (
    ClassifierUnavailable,
    Conflict,
    InvalidLabels,
    InvalidModelOutput,
    NotFound,
    PublishFailed,
    StoreUnavailable,
    TicketBusy,
    UnknownTicket,
)
from triage.service import Action, Feedback, ProcessingOptions

SOFTWARE = Labels("Software", "Medium", "Application Support")
ACCESS = Labels("Access", "High", "Identity & Access Management")
JENKINS = Submission(
    title="Jenkins deployment timeout connecting to AWS",
    description="The deploy stage of our Jenkins pipeline times out connecting to AWS",
)
JENKINS_AGAIN = Submission(
    title="Jenkins deployment timeout connecting to AWS",
    description="The deploy stage of our Jenkins pipeline times out connecting to AWS again",
)
PRINTER = Submission(title="Printer on floor 3 is jammed", description="paper stuck in tray two")


@pytest.fixture
def world(taxonomy: Taxonomy) -> Engine:
    """One engine wired to in-memory fakes."""
    return Engine(taxonomy, labels=SOFTWARE, options=ProcessingOptions(max_delivery_attempts=3))


# --------------------------------------------------------------------------- ingest


def test_ingest_stores_pending_and_publishes_once(world: Engine):
    result = world.ingest(JENKINS)
    assert result.created
    stored = world.store.tickets[result.ticket.ticket_id]
    assert stored.status is Status.PENDING
    assert world.publisher.messages == [(stored.ticket_id, "classify")]
    assert world.store.writes == 1  # the create; nothing records the publish


def test_the_same_idempotency_key_returns_the_same_ticket_and_publishes_nothing_twice(world: Engine):
    keyed = dataclasses.replace(JENKINS, idempotency_key="req-1")
    first, second = world.ingest(keyed), world.ingest(keyed)
    assert second.ticket.ticket_id == first.ticket.ticket_id
    assert not second.created
    assert len(world.publisher.messages) == 1
    assert len(world.store.tickets) == 1


def test_the_same_source_and_external_id_is_the_same_ticket(world: Engine):
    first = world.ingest(dataclasses.replace(JENKINS, source="jira", external_id="OPS-1"))
    second = world.ingest(dataclasses.replace(JENKINS_AGAIN, source="jira", external_id="OPS-1"))
    other = world.ingest(dataclasses.replace(JENKINS, source="servicenow", external_id="OPS-1"))
    assert second.ticket.ticket_id == first.ticket.ticket_id
    assert other.ticket.ticket_id != first.ticket.ticket_id
    assert len(world.publisher.messages) == 2


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(world: Engine):
    world.ingest(dataclasses.replace(JENKINS, idempotency_key="req-1"))
    with pytest.raises(Conflict):
        world.ingest(dataclasses.replace(PRINTER, idempotency_key="req-1"))


def test_a_failed_publish_leaves_no_ticket_and_the_retry_succeeds_once(world: Engine):
    keyed = dataclasses.replace(JENKINS, idempotency_key="req-1")
    world.publisher.failures = 1
    with pytest.raises(PublishFailed):
        world.ingest(keyed)
    assert world.store.tickets == {}
    retried = world.ingest(keyed)
    assert retried.created
    assert world.publisher.messages == [(retried.ticket.ticket_id, "classify")]
    world.ingest(keyed)
    assert len(world.publisher.messages) == 1


def test_a_ticket_left_unpublished_is_published_by_the_next_attempt(world: Engine):
    keyed = dataclasses.replace(JENKINS, idempotency_key="req-1")
    world.publisher.failures = 1
    world.store.fail_next.append("delete")  # the undo fails too: the ticket stays, unpublished
    with pytest.raises(PublishFailed):
        world.ingest(keyed)
    (left,) = world.store.tickets.values()
    # While the first request might still be publishing, a duplicate does not publish again...
    assert not world.ingest(keyed).created
    assert world.publisher.messages == []
    # ...but once that is impossible, the next attempt finishes the job.
    world.clock.advance(31)
    again = world.ingest(keyed)
    assert not again.created
    assert world.publisher.messages == [(left.ticket_id, "classify")]


def test_a_duplicate_of_a_ticket_the_worker_has_seen_publishes_nothing(world: Engine):
    keyed = dataclasses.replace(JENKINS, idempotency_key="req-1")
    ticket_id = world.ingest(keyed).ticket.ticket_id
    world.process(ticket_id)
    world.clock.advance(3600)
    assert not world.ingest(keyed).created
    assert world.publisher.messages == [(ticket_id, "classify")]


def test_a_duplicate_of_a_ticket_still_queued_long_after_may_publish_it_again_and_it_is_classified_once(
    world: Engine,
):
    """Nothing records the publish, so a late duplicate of a ticket no delivery has reached yet
    sends a second message: the worker's claim makes the second delivery a no-op."""
    keyed = dataclasses.replace(JENKINS, idempotency_key="req-1")
    ticket_id = world.ingest(keyed).ticket.ticket_id
    world.clock.advance(31)
    world.ingest(keyed)
    assert world.publisher.messages == [(ticket_id, "classify")] * 2
    first, second = world.process(ticket_id), world.process(ticket_id)
    assert first.action is Action.CLASSIFIED and second.action is Action.SKIPPED
    assert len(world.classifier.requests) == 1


def test_a_store_failure_publishes_nothing(world: Engine):
    world.store.fail_next.append("create")
    with pytest.raises(StoreUnavailable):
        world.ingest(JENKINS)
    assert world.publisher.messages == []


# --------------------------------------------------------------------------- process


def test_a_new_ticket_goes_to_the_classifier_and_into_memory(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    assert ticket.status is Status.CLASSIFIED_BY_AI
    assert ticket.classification.labels == SOFTWARE
    assert ticket.classification.classifier == "scripted"
    assert ticket.attempts == 1 and ticket.lease_expires_at is None
    entry = world.memory.stored[ticket.ticket_id]
    assert entry.label_source is LabelSource.MODEL
    assert entry.text == ticket.text


def test_a_redelivered_message_does_nothing(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    outcome = world.process(ticket.ticket_id)
    assert outcome.action == "skipped"
    assert len(world.classifier.requests) == 1
    assert world.store.tickets[ticket.ticket_id] == ticket


def test_a_near_duplicate_is_answered_from_memory_without_the_classifier(world: Engine):
    first = world.submit_and_process(JENKINS)
    second = world.submit_and_process(JENKINS_AGAIN)
    assert second.status is Status.CLASSIFIED_BY_CACHE
    assert second.classification.matched_ticket_id == first.ticket_id
    assert second.classification.similarity >= 0.95
    assert len(world.classifier.requests) == 1
    assert world.memory.stored[second.ticket_id].source_ticket_id == first.ticket_id


def test_the_classifier_sees_the_nearest_labelled_tickets_as_examples(world: Engine):
    world.submit_and_process(JENKINS)
    world.submit_and_process(Submission(title="Jenkins pipeline fails", description="deploy stage error"))
    request = world.classifier.requests[-1]
    assert [e.text.split("\n")[0] for e in request.examples] == [JENKINS.title]
    assert request.taxonomy is world.taxonomy


def test_an_answer_outside_the_taxonomy_fails_the_ticket_and_is_never_stored(world: Engine):
    world.classifier.labels = Labels("Plumbing", "Medium", "Application Support")
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    outcome = world.process(ticket_id)
    ticket = world.store.tickets[ticket_id]
    assert outcome.action == "failed"
    assert ticket.status is Status.FAILED and ticket.classification is None
    assert "outside the taxonomy" in ticket.last_error
    assert world.memory.stored == {}


def test_invalid_model_output_is_permanent(world: Engine):
    world.classifier.raise_next.append(InvalidModelOutput("not JSON"))
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    assert world.process(ticket_id).action == "failed"
    assert world.store.tickets[ticket_id].last_error == "InvalidModelOutput: not JSON"


def test_a_transient_fault_raises_for_redelivery_and_is_remembered(world: Engine):
    world.classifier.raise_next.append(ClassifierUnavailable("429 after retries"))
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    with pytest.raises(ClassifierUnavailable):
        world.process(ticket_id)
    ticket = world.store.tickets[ticket_id]
    assert ticket.status is Status.PENDING
    assert ticket.last_error == "ClassifierUnavailable: 429 after retries"
    assert ticket.lease_expires_at is None  # the redelivery may start at once
    world.process(ticket_id)
    assert world.store.tickets[ticket_id].status is Status.CLASSIFIED_BY_AI
    assert world.store.tickets[ticket_id].attempts == 2


def test_without_the_memory_a_ticket_is_classified_anyway_and_the_gap_recorded(world: Engine):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    world.memory.down = True
    assert world.process(ticket_id).action == "classified"
    classification = world.store.tickets[ticket_id].classification
    assert classification.remembered is False
    assert classification.degraded[0].startswith("memory unavailable")
    assert world.store.tickets[ticket_id].status is Status.CLASSIFIED_BY_AI


def test_the_memory_being_down_can_be_made_transient(world: Engine):
    world.set(options=dataclasses.replace(world.options, memory_unavailable="retry"))
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    world.memory.down = True
    with pytest.raises(Exception, match="memory down"):
        world.process(ticket_id)
    assert world.store.tickets[ticket_id].status is Status.PENDING


def test_an_unavailable_classifier_falls_back_and_flags_the_ticket_for_review(world: Engine):
    world.classifier.raise_next.append(ClassifierUnavailable("429 after 5 attempts"))
    fallback = ScriptedClassifier(ACCESS)
    fallback.name = "local-embedding"
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    world.set(fallback=fallback)
    world.process(ticket_id)
    classification = world.store.tickets[ticket_id].classification
    assert classification.labels == ACCESS and classification.needs_review is True
    assert classification.degraded == ("scripted unavailable (429 after 5 attempts); answered by local-embedding",)


def test_a_ticket_fails_after_its_last_attempt_with_the_last_error(world: Engine):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    for _ in range(3):
        world.classifier.raise_next.append(ClassifierUnavailable("503"))
        with pytest.raises(ClassifierUnavailable):
            world.process(ticket_id)
    outcome = world.process(ticket_id)
    ticket = world.store.tickets[ticket_id]
    assert outcome.action == "failed"
    assert ticket.status is Status.FAILED
    assert ticket.last_error == "gave up after 3 attempts; last error: ClassifierUnavailable: 503"


def test_a_concurrent_delivery_is_told_to_come_back_later(world: Engine):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    world.store.update(ticket_id, lambda t: domain.ticket.claim(t, now=world.clock(), lease_seconds=60, max_attempts=3))
    with pytest.raises(TicketBusy):
        world.process(ticket_id)


def test_a_message_for_an_unknown_ticket_is_permanent(world: Engine):
    with pytest.raises(UnknownTicket):
        world.process("nope")


def test_a_ticket_already_in_memory_from_a_crashed_attempt_is_not_its_own_neighbour(world: Engine):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    text = world.store.tickets[ticket_id].text
    world.memory.remember(
        MemoryEntry(ticket_id, "default", world.embedder.embed([text])[0], text, ACCESS, LabelSource.MODEL)
    )
    world.process(ticket_id)
    ticket = world.store.tickets[ticket_id]
    assert ticket.status is Status.CLASSIFIED_BY_AI  # not a cache hit on itself
    assert ticket.classification.labels == SOFTWARE


def test_a_verdict_while_the_worker_runs_is_refused_and_the_answer_stands(world: Engine, monkeypatch):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    original_classify = world.classifier.classify
    refused = []

    def classify_while_a_human_corrects(request):
        with pytest.raises(Conflict):
            world.feedback(ticket_id, Feedback(category="Access"))
        refused.append(True)
        return original_classify(request)

    monkeypatch.setattr(world.classifier, "classify", classify_while_a_human_corrects)
    outcome = world.process(ticket_id)
    ticket = world.store.tickets[ticket_id]
    assert refused and outcome.action == "classified"
    assert ticket.status is Status.CLASSIFIED_BY_AI and ticket.corrections == ()
    assert world.memory.stored[ticket_id].label_source is LabelSource.MODEL


# --------------------------------------------------------------------------- feedback


def test_feedback_corrects_the_ticket_and_relabels_the_memory(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    corrected = world.feedback(ticket.ticket_id, Feedback(category="Access", reviewer="ana", comment="IAM role"))
    assert corrected.status is Status.CORRECTED_BY_HUMAN
    assert corrected.labels == Labels("Access", "Medium", "Identity & Access Management")
    assert corrected.corrections[0].previous == SOFTWARE
    assert corrected.corrections[0].reviewer == "ana"
    entry = world.memory.stored[ticket.ticket_id]
    assert entry.labels == corrected.labels and entry.label_source is LabelSource.HUMAN
    assert world.publisher.messages[-1] == (ticket.ticket_id, "classify")  # no worker round trip needed


def test_after_feedback_the_next_similar_ticket_gets_the_corrected_category(world: Engine):
    first = world.submit_and_process(JENKINS)
    cached = world.submit_and_process(JENKINS_AGAIN)
    assert cached.labels == SOFTWARE
    world.feedback(first.ticket_id, Feedback(category="Access"))
    # The entry answered from the corrected one follows it.
    assert world.memory.stored[cached.ticket_id].labels.category == "Access"
    third = world.submit_and_process(Submission(title=JENKINS.title, description=JENKINS.description + " once more"))
    assert third.status is Status.CLASSIFIED_BY_CACHE
    assert third.labels.category == "Access"
    assert len(world.classifier.requests) == 1


def test_the_classifier_sees_corrected_tickets_first(world: Engine):
    first = world.submit_and_process(JENKINS)
    world.submit_and_process(Submission(title="Jenkins pipeline deploy stage slow", description="AWS"))
    world.feedback(first.ticket_id, Feedback(category="Access"))
    world.submit_and_process(Submission(title="Jenkins deploy to AWS broken", description="pipeline stage"))
    examples = world.classifier.requests[-1].examples
    assert examples[0].ticket_id == first.ticket_id
    assert examples[0].label_source is LabelSource.HUMAN


def test_feedback_outside_the_taxonomy_stores_nothing(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    before = dict(world.store.tickets)
    for feedback in (Feedback(category="Plumbing"), Feedback(category="Access", priority="Whenever")):
        with pytest.raises(InvalidLabels):
            world.feedback(ticket.ticket_id, feedback)
    assert world.store.tickets == before


def test_feedback_on_an_unknown_ticket_is_not_found(world: Engine):
    with pytest.raises(NotFound):
        world.feedback("nope", Feedback(category="Access"))


def test_repeating_the_same_feedback_records_one_correction(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    world.feedback(ticket.ticket_id, Feedback(category="Access", reviewer="ana"))
    again = world.feedback(ticket.ticket_id, Feedback(category="Access", reviewer="ana"))
    assert len(again.corrections) == 1


def test_feedback_keeps_priority_and_routes_a_new_category_to_its_group(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    same_category = world.feedback(ticket.ticket_id, Feedback(category="Software", priority="High"))
    assert same_category.labels == Labels("Software", "High", "Application Support")
    moved = world.feedback(ticket.ticket_id, Feedback(category="Network"))
    assert moved.labels == Labels("Network", "High", "Network Operations")
    explicit = world.feedback(ticket.ticket_id, Feedback(category="Network", assignment_group="Service Desk"))
    assert explicit.labels.assignment_group == "Service Desk"


@pytest.mark.parametrize("memory_state", ["not yet in memory", "memory down"])
def test_feedback_the_memory_cannot_take_now_is_queued_for_the_worker(world: Engine, memory_state):
    ticket_id = world.ingest(JENKINS).ticket.ticket_id
    world.process(ticket_id)
    if memory_state == "memory down":
        world.memory.down = True
    else:
        del world.memory.stored[ticket_id]  # e.g. it was classified while the memory was down
    world.feedback(ticket_id, Feedback(category="Access"))
    assert world.publisher.messages[-1] == (ticket_id, "remember")
    world.memory.down = False
    outcome = world.remember(ticket_id)
    assert outcome.action == "remembered"
    entry = world.memory.stored[ticket_id]
    assert entry.labels.category == "Access" and entry.label_source is LabelSource.HUMAN
    # The classify message still in flight now does nothing.
    assert world.process(ticket_id).action == "skipped"


def test_feedback_that_can_neither_reach_memory_nor_be_queued_is_a_503_and_safe_to_repeat(world: Engine):
    ticket = world.submit_and_process(JENKINS)
    world.memory.down = True
    world.publisher.failures = 1
    with pytest.raises(PublishFailed):
        world.feedback(ticket.ticket_id, Feedback(category="Access"))
    world.memory.down = False
    repeated = world.feedback(ticket.ticket_id, Feedback(category="Access"))
    assert len(repeated.corrections) == 1
    assert world.memory.stored[ticket.ticket_id].label_source is LabelSource.HUMAN
