"""When the memory answers a ticket, and with what: the worker's two decisions.

* ``calibrated``: a tenant ``triage calibrate`` has fitted. Every label the calibration covers
  must clear the bar of its proposed value (``decision.judge`` on the neighbours and the local
  classifier's evidence); a label it does not cover takes the local classifier's proposal.
* ``fixed``: any other tenant, by the fixed policy (``policy.decide``).

Both return the memory's classification and the neighbour it rests on, or None (the
classifier answers).
"""

from __future__ import annotations

from .. import decision, policy
from ..domain import AnswerPath, Classification, Labels, LabelSource, Neighbour
from ..errors import InvalidLabels
from ..ports import ClassificationRequest, EvidenceSource


def fixed(neighbours: list[Neighbour], memory_policy: policy.MemoryPolicy) -> tuple[Classification, Neighbour] | None:
    """An uncalibrated tenant's memory answer: the fixed policy's (``policy.decide``)."""
    found = policy.decide(neighbours, memory_policy)
    if not found.hit:
        return None
    assert found.labels is not None and found.matched is not None
    classification = Classification(
        labels=found.labels,
        confidence=found.confidence,
        rationale=f"Answered from memory: {found.reason}.",
        path=AnswerPath.MEMORY,
        matched_ticket_id=found.matched.ticket_id,
        similarity=round(found.matched.similarity, 4),
    )
    return classification, found.matched


def calibrated(
    request: ClassificationRequest, evidence: EvidenceSource, calibration: decision.Calibration
) -> tuple[Classification, Neighbour] | None:
    """A calibrated tenant's memory answer: every label the calibration covers clears the bar
    of its proposed value (a label it does not cover takes the local classifier's proposal),
    and a neighbour carries the category (the memory, not the taxonomy alone, answers)."""
    found = evidence.evidence(request)
    verdict = decision.judge(
        [(n.similarity, n.labels.as_dict(), n.label_source is LabelSource.HUMAN) for n in request.neighbours],
        found,
        calibration,
    )
    if "category" not in verdict.labels or not verdict.answered:
        return None
    values = {name: e.proposed for name, e in found.items()}
    values.update({name: v.value for name, v in verdict.labels.items()})
    matched = next((n for n in request.neighbours if n.labels.category == values["category"]), None)
    if matched is None:
        return None
    try:
        labels = request.taxonomy.check(Labels(**{k: values[k] for k in ("category", "priority", "assignment_group")}))
    except (KeyError, InvalidLabels):
        return None
    classification = Classification(
        labels=labels,
        confidence=round(verdict.probability, 4),
        rationale=f"Answered from memory at target precision {calibration.target:g}: {verdict.reason()}.",
        path=AnswerPath.MEMORY,
        matched_ticket_id=matched.ticket_id,
        similarity=round(matched.similarity, 4),
        probabilities={name: round(v.probability, 6) for name, v in verdict.labels.items()},
    )
    return classification, matched
