"""Measuring the memory's answers: the background audit by the classifier of record, and the
outcomes a reviewer's confirmation or correction gives (``record_outcomes``).

An audit never delays or changes a ticket: it runs after the answer, on its own ``audit``
message, and only records what the classifier of record said beside the answer. The memory
entry the answer left takes the classifier's labels, unless a reviewer's are there by now. Every
outcome goes to the tenant's calibrations, which tighten a value's bar by themselves when its
measured precision no longer keeps the target (``precision.live_check``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .. import domain, metrics
from ..domain import LABEL_NAMES, AnswerPath, Audit, LabelSource, Ticket
from ..errors import InvalidModelOutput, MemoryUnavailable, StoreUnavailable, UnknownTicket
from ..policy import select_examples
from ..ports import Calibrations, ClassificationRequest, Classifier, Clock, Embedder, Memory, Tickets
from ..precision import wilson_lower
from .classify import ProcessingOptions
from .outcome import Action, Outcome

log = logging.getLogger(__name__)

ANSWERED = frozenset({LabelSource.MEMORY})  # the entries an audit may relabel: the memory's own guesses


def audit(
    ticket_id: str,
    *,
    store: Tickets,
    embedder: Embedder,
    memory: Memory,
    classifier: Classifier,
    calibrations: Calibrations,
    taxonomy: domain.Taxonomy,
    clock: Clock,
    options: ProcessingOptions | None = None,
) -> Outcome:
    """Ask the classifier of record about a memory answer and record, per label, whether it agrees.

    Idempotent: the outcomes are recorded once per ticket and label, the audit once per ticket.
    A classifier that is unavailable raises (Pub/Sub redelivers); one whose output is unusable
    gives no audit (a sample lost, logged)."""
    options = options or ProcessingOptions()
    ticket = store.get(ticket_id)
    if ticket is None:
        raise UnknownTicket(f"no ticket with id {ticket_id!r}")
    answered = ticket.classification
    if answered is None or answered.path is not AnswerPath.MEMORY or ticket.audit is not None:
        return Outcome(Action.SKIPPED, ticket_id, ticket.status, "no memory answer to audit")
    text = options.model_text(ticket)
    embedding = embedder.embed([text])[0]
    try:
        found = memory.nearest(embedding, tenant=ticket.tenant, limit=options.memory_neighbours + 1)
    except MemoryUnavailable:
        found = []
    # The classifier sees what it would have seen: the neighbours, never this ticket's own entry.
    neighbours = [n for n in found if ticket_id not in (n.ticket_id, n.source_ticket_id)][: options.memory_neighbours]
    request = ClassificationRequest(
        text=text,
        embedding=embedding,
        examples=select_examples(
            neighbours, max_examples=options.few_shot_max_examples, max_chars=options.few_shot_max_chars
        ),
        taxonomy=taxonomy,
        neighbours=neighbours,
        tenant=ticket.tenant,
    )
    try:
        reference = classifier.classify(request)
    except InvalidModelOutput as error:
        metrics.LLM_CALLS.labels(classifier.name, "invalid_output").inc()
        log.warning("audit skipped: unusable classifier output", extra={"ticket_id": ticket_id, "error": str(error)})
        return Outcome(Action.SKIPPED, ticket_id, ticket.status, f"audit skipped: {error}")
    metrics.LLM_CALLS.labels(classifier.name, "audit").inc()
    agreed = {label: getattr(reference.labels, label) == getattr(answered.labels, label) for label in LABEL_NAMES}
    record_outcomes(ticket, agreed, "audit", calibrations=calibrations)
    relabelled = _relabel_entry(ticket, reference.labels, memory)
    verdict = Audit(labels=reference.labels, classifier=classifier.name, agreed=agreed, audited_at=clock())
    try:
        ticket = store.update(ticket_id, lambda t: domain.ticket.record_audit(t, verdict, now=clock()))
    except domain.Unchanged as unchanged:
        ticket = unchanged.ticket
    log.info(
        "memory answer audited",
        extra={
            "ticket_id": ticket_id,
            "tenant": ticket.tenant,
            "classifier": classifier.name,
            "agreed": agreed,
            "category": answered.labels.category,
            "memory_relabelled": relabelled,
        },
    )
    return Outcome(Action.AUDITED, ticket_id, ticket.status)


def _relabel_entry(ticket: Ticket, labels: domain.Labels, memory: Memory) -> bool:
    """The classifier of record's labels replace the memory's guess in the ticket's own entry (and
    in those answered from it), unless a reviewer's labels are there by now. The entry becomes
    history that ``triage calibrate --from-memory`` fits on, and a wrong answer stops spreading.
    The answer on the ticket stays as given. Best effort: with the memory down it is logged."""
    try:
        return memory.relabel(
            ticket.ticket_id, tenant=ticket.tenant, labels=labels, label_source=LabelSource.MODEL, over=ANSWERED
        )
    except (MemoryUnavailable, StoreUnavailable) as error:  # its record or its index
        log.warning("audit not written to the memory", extra={"ticket_id": ticket.ticket_id, "error": str(error)})
        return False


def record_outcomes(
    ticket: Ticket, correct: Mapping[str, bool], source: str, *, calibrations: Calibrations | None
) -> None:
    """Record, per label, whether a memory answer was right (``source``: audit, confirmation or
    correction) with the probability the decision gave it; a ticket not answered from memory has
    nothing to record. Logs each outcome (the log-based metrics count them) and sets the gauges."""
    answered = ticket.classification
    if calibrations is None or answered is None or answered.path is not AnswerPath.MEMORY:
        return
    for label, right in correct.items():
        value = getattr(answered.labels, label)
        probability = float(answered.probabilities.get(label, answered.confidence))
        recorded = calibrations.record(
            tenant=ticket.tenant,
            ticket_id=ticket.ticket_id,
            label=label,
            value=value,
            probability=probability,
            correct=right,
            source=source,
        )
        if recorded is None:
            continue  # this judge's verdict was recorded before
        result = "correct" if right else "wrong"
        metrics.MEMORY_OUTCOMES.labels(label, value, source, result).inc()
        log.info(
            "memory answer outcome",
            extra={
                "ticket_id": ticket.ticket_id,
                "tenant": ticket.tenant,
                "label": label,
                "value": value,
                "source": source,
                "result": result,
                "probability": probability,
            },
        )
        if recorded.get("tightened") is not None:
            metrics.THRESHOLD_TIGHTENED.labels(label, value).inc()
    set_precision_gauges(ticket.tenant, calibrations)


def set_precision_gauges(tenant: str, calibrations: Calibrations) -> None:
    """The live precision of each label and value, as last measured, on this process's gauges."""
    calibration = calibrations.get(tenant)
    for label, values in calibrations.measured(tenant).items():
        fitted = calibration.labels.get(label) if calibration else None
        for value, counts in values.items():
            answered, right = counts["answered"], counts["correct"]
            bar = fitted.bar(value) if fitted else None
            figures = {
                "measured": right / answered if answered else 0.0,
                "lower95": wilson_lower(right, answered),
                "target": calibration.target if calibration else 0.0,
                "threshold": -1.0 if bar is None else bar,
            }
            for figure, number in figures.items():
                metrics.MEMORY_PRECISION.labels(tenant, label, value, figure).set(number)


def reviewed_outcomes(before: Ticket, after: Ticket) -> tuple[dict[str, bool], str]:
    """What a reviewer's verdict says of the memory's answer: per label right or wrong, and
    whether it was a confirmation or a correction."""
    confirmed = bool(after.corrections) and after.corrections[-1].confirmed
    verdict = "confirmation" if confirmed else "correction"
    if before.classification is None or after.labels is None:
        return {}, verdict
    answered = before.classification.labels
    return {label: getattr(after.labels, label) == getattr(answered, label) for label in LABEL_NAMES}, verdict
