"""The precision promise in the worker and the API, on the fakes: a calibrated tenant's memory
answers only above each value's bar; audits, confirmations and corrections are measured; a
bar that no longer keeps the target tightens by itself; /stats shows the table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.harness import Engine
from triage.decision import Calibration, LabelCalibration, LabelEvidence
from triage.domain import AnswerPath, Labels, LabelSource, MemoryEntry, Status, Submission
from triage.errors import Conflict
from triage.service import Feedback, ProcessingOptions

NETWORK = Labels("Network", "High", "Network Operations")
VPN = Submission(title="VPN drops every ten minutes", description="GlobalProtect disconnects")
# p = sigmoid(20 * vote_share - 10): a unanimous neighbourhood gives 0.99995, a split one 0.5.
MODEL = {"intercept": -10.0, "features": ["vote_share"], "mean": [0.0], "scale": [1.0], "coef": [20.0]}
BAR = {"threshold": 0.9, "source": "own", "answered": 130, "correct": 130, "record": [[0.99, 1]] * 130}


class VoteEvidence:
    """The local classifier's evidence, reduced to the neighbours' category vote (a fake of the
    EvidenceSource port: the decision's arithmetic is the real one)."""

    def evidence(self, request):
        votes: dict[str, float] = {}
        for n in request.neighbours:
            votes[n.labels.category] = votes.get(n.labels.category, 0.0) + n.similarity
        total = sum(votes.values()) or 1.0
        blend = {c: v / total for c, v in votes.items()} or {"Software": 1.0}
        return {
            "category": LabelEvidence(blend=blend),
            "priority": LabelEvidence(blend={"High": 1.0}),
            "assignment_group": LabelEvidence(blend={"Network Operations": 1.0}),
        }


def calibration(bars: dict | None = None) -> Calibration:
    thresholds = bars if bars is not None else {"Network": dict(BAR)}
    return Calibration(tenant="default", target=0.97, labels={"category": LabelCalibration(MODEL, thresholds)})


@pytest.fixture
def world(taxonomy) -> Engine:
    engine = Engine(taxonomy, options=ProcessingOptions(audit_rate=1.0))
    engine.set(evidence=VoteEvidence())
    for index in range(6):
        engine.memory.remember(
            MemoryEntry(
                ticket_id=f"vpn-{index}",
                tenant="default",
                embedding=engine.embedder.embed([VPN.title])[0],
                text=VPN.title,
                labels=NETWORK,
                label_source=LabelSource.HUMAN,
            )
        )
    return engine


def test_a_calibrated_tenant_answers_from_memory_above_the_bar_and_queues_an_audit(world: Engine):
    world.calibrations.save(calibration())
    ticket = world.submit_and_process(VPN)
    assert ticket.status is Status.CLASSIFIED_BY_CACHE and ticket.labels == NETWORK
    found = ticket.classification
    assert found.probabilities == {"category": pytest.approx(1.0, abs=1e-3)}
    assert "target precision 0.97" in found.rationale and ">= bar 0.900" in found.rationale
    assert found.matched_ticket_id.startswith("vpn-")
    assert not world.classifier.requests
    assert (ticket.ticket_id, "audit") in world.publisher.messages


@pytest.mark.parametrize(
    "bars",
    [
        {"Network": {**BAR, "threshold": None, "source": "none"}},  # not enough evidence: no bar
        {"Network": {**BAR, "threshold": 0.99999}},  # a bar the probability does not clear
        {},  # the value was never seen when calibrating
    ],
)
def test_a_value_without_a_bar_it_clears_goes_to_the_classifier(world: Engine, bars):
    world.calibrations.save(calibration(bars))
    ticket = world.submit_and_process(VPN)
    assert ticket.status is Status.CLASSIFIED_BY_AI and len(world.classifier.requests) == 1
    assert not any(kind == "audit" for _, kind in world.publisher.messages)


def test_an_uncalibrated_tenant_keeps_the_fixed_policy(world: Engine):
    ticket = world.submit_and_process(VPN)
    assert ticket.status is Status.CLASSIFIED_BY_CACHE
    assert ticket.classification.probabilities == {} and "close neighbours agree" in ticket.classification.rationale


def test_an_audit_that_disagrees_tightens_the_bar_and_the_next_ticket_goes_to_the_classifier(world: Engine):
    world.calibrations.save(calibration())
    first = world.submit_and_process(VPN)
    world.classifier.labels = Labels("Software", "High", "Application Support")  # the classifier of record
    outcome = world.audit(first.ticket_id)
    assert outcome.action == "audited"
    audited = world.store.tickets[first.ticket_id]
    assert audited.labels == NETWORK and audited.status is Status.CLASSIFIED_BY_CACHE  # never changed
    assert audited.audit.agreed == {"category": False, "priority": True, "assignment_group": False}
    assert world.calibrations.measured("default")["category"]["Network"] == {"answered": 1, "correct": 0}
    assert world.calibrations.get("default").labels["category"].bar("Network") is None  # tightened away
    # The memory's entry for the ticket now holds the classifier of record's labels: history to fit on.
    entry = world.memory.stored[first.ticket_id]
    assert entry.labels == world.classifier.labels and entry.label_source is LabelSource.MODEL
    assert world.audit(first.ticket_id).action == "skipped"  # a redelivery records nothing twice
    assert world.calibrations.measured("default")["category"]["Network"]["answered"] == 1

    calls = len(world.classifier.requests)
    second = world.submit_and_process(Submission(title="VPN drops every ten minutes again"))
    assert second.status is Status.CLASSIFIED_BY_AI and len(world.classifier.requests) == calls + 1

    table = world.stats(window=timedelta(hours=1))["precision"]
    (row,) = [r for r in table["labels"]["category"] if r["value"] == "Network"]
    assert row["measured"] == 1 and row["correct"] == 0 and row["lower95"] < 0.97
    assert row["threshold"] is None and row["status"] == "no_bar" and row["tightened_at"] is not None


def test_an_audit_never_relabels_an_entry_a_reviewer_labelled_first(world: Engine):
    world.calibrations.save(calibration())
    ticket = world.submit_and_process(VPN)
    assert world.memory.stored[ticket.ticket_id].label_source is LabelSource.MEMORY
    world.feedback(ticket.ticket_id, Feedback(category="Network", priority="Low", reviewer="bo"))
    reviewed = world.memory.stored[ticket.ticket_id]
    # The audit message was queued before the review, and arrives after it.
    world.store.tickets[ticket.ticket_id] = ticket
    world.classifier.labels = Labels("Software", "High", "Application Support")
    assert world.audit(ticket.ticket_id).action == "audited"
    assert world.memory.stored[ticket.ticket_id] == reviewed  # the reviewer's labels stay


def test_a_confirmation_counts_as_correct_and_a_correction_as_an_error_per_label(world: Engine):
    world.calibrations.save(calibration())
    confirmed = world.submit_and_process(VPN)
    after = world.feedback(confirmed.ticket_id, Feedback(category=None, reviewer="ana"))
    assert after.status is Status.VERIFIED_BY_HUMAN and after.labels == NETWORK
    corrected = world.submit_and_process(Submission(title="VPN drops every ten minutes", description="again"))
    world.feedback(corrected.ticket_id, Feedback(category="Network", priority="Low", reviewer="bo"))

    recorded = {(o["ticket_id"], o["label"]): o for o in world.calibrations.recorded.values()}
    assert {label: o["correct"] for (t, label), o in recorded.items() if t == confirmed.ticket_id} == {
        "category": True,
        "priority": True,
        "assignment_group": True,
    }
    assert {label: o["correct"] for (t, label), o in recorded.items() if t == corrected.ticket_id} == {
        "category": True,
        "priority": False,
        "assignment_group": True,
    }
    assert {o["source"] for (t, _), o in recorded.items() if t == corrected.ticket_id} == {"correction"}
    stats = world.stats(window=timedelta(hours=1))
    assert stats["counts"]["Verified_By_Human"] == 1 and stats["counts"]["Corrected_By_Human"] == 1
    (row,) = [r for r in stats["precision"]["labels"]["category"] if r["value"] == "Network"]
    assert (row["measured"], row["correct"], row["status"]) == (2, 2, "below_target")  # 2 answers prove little
    assert row["tickets"] == 2 and row["answered_share"] == 1.0


def test_a_verdict_on_an_answer_not_from_memory_measures_nothing(world: Engine):
    ticket = world.submit_and_process(Submission(title="Printer jams on floor 3"))
    assert ticket.classification.path is AnswerPath.CLASSIFIER
    world.feedback(ticket.ticket_id, Feedback(category=None))
    assert world.calibrations.recorded == {}


def test_a_confirmation_of_a_pending_ticket_is_a_conflict(world: Engine):
    ticket_id = world.ingest(VPN).ticket.ticket_id
    with pytest.raises(Conflict):
        world.feedback(ticket_id, Feedback(category=None))
    assert world.store.tickets[ticket_id].status is Status.PENDING and world.calibrations.recorded == {}


def test_stats_name_each_count_for_what_answered(world: Engine):
    world.submit_and_process(VPN)  # memory (fixed policy)
    world.submit_and_process(Submission(title="Printer jams on floor 3"))  # the scripted classifier: an LLM
    stats = world.stats(window=timedelta(hours=1))
    assert stats["answered_by"] == {"memory": 1, "llm": 1, "local_classifier": 0}
    assert stats["precision"]["calibrated"] is False and stats["precision"]["target"] == 0.97
