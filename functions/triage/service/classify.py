"""Classifying a ticket (``process``), keeping the memory in line with its labels
(``remember``) and loading the model early (``warm_up``): the worker's use cases.

Orchestration only: collaborators come in as ports, the rules from ``domain`` and
``policy``. Delivery is at-least-once, so every step is idempotent: the worker claims a
ticket before work, records its answer only if the ticket is still Pending, and memory
writes are upserts by ticket id.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from .. import decision, domain, metrics, policy
from ..domain import (
    REVIEWED,
    AnswerPath,
    Classification,
    LabelSource,
    MemoryEntry,
    MessageKind,
    Status,
    Taxonomy,
    Ticket,
)
from ..errors import (
    ClassifierMisconfigured,
    ClassifierUnavailable,
    InvalidModelOutput,
    MemoryIndexMissing,
    MemoryUnavailable,
    PermanentError,
    TransientError,
    UnknownTicket,
)
from ..ports import (
    Calibrations,
    ClassificationRequest,
    Classifier,
    Clock,
    Embedder,
    EvidenceSource,
    Memory,
    Publisher,
    Tickets,
    Verifier,
)
from . import from_memory
from .outcome import Action, Outcome
from .writeback import WritebackQueue, resend_writeback, with_writeback

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ProcessingOptions:
    memory_policy: policy.MemoryPolicy = dataclasses.field(default_factory=policy.MemoryPolicy)
    memory_neighbours: int = policy.MEMORY_NEIGHBOURS
    few_shot_max_examples: int = 8
    few_shot_max_chars: int = 6_000
    model_text_max_chars: int = 4_000
    processing_lease_seconds: float = 120.0
    max_delivery_attempts: int = 5
    redact: Callable[[str], str] = lambda text: text  # before the text reaches the embedder, LLM or memory
    # Degraded modes: without the memory, classify anyway ("classify") or wait for it ("retry").
    memory_unavailable: str = "classify"
    # The share of memory answers the classifier of record also answers, in the background (MEMORY_AUDIT_RATE).
    audit_rate: float = 0.0

    def model_text(self, ticket: Ticket) -> str:
        # Redact the whole text, then cut: a cut must never leave half a secret behind.
        return self.redact(ticket.text)[: self.model_text_max_chars]


def process(
    ticket_id: str,
    *,
    store: Tickets,
    embedder: Embedder,
    memory: Memory,
    classifier: Classifier,
    taxonomy: Taxonomy,
    clock: Clock,
    options: ProcessingOptions = ProcessingOptions(),
    writeback: WritebackQueue | None = None,
    fallback: Classifier | None = None,
    verifier: Verifier | None = None,
    calibrations: Calibrations | None = None,
    evidence: EvidenceSource | None = None,
    publisher: Publisher | None = None,
) -> Outcome:
    """Classify one ticket, from memory when the evidence is strong, else with the classifier.

    With the tenant calibrated (``calibrations``), the memory answers when every label's
    probability (``decision.judge`` on the neighbours and ``evidence``) clears the bar of its
    proposed value; uncalibrated, the fixed policy decides. A share (``options.audit_rate``)
    of memory answers is sent to the classifier of record afterwards (``publisher``, an
    ``audit`` message), never delaying or changing the answer.

    An LLM's labels carry the engine's confidence, never the model's word: ``verifier``'s
    agreement with them. Degraded modes, recorded on the ticket: with the memory unreachable
    the ticket is classified without it (``options.memory_unavailable == "classify"``); with
    the classifier unavailable after its retries, ``fallback`` answers and the ticket is
    flagged for review.

    Raises TransientError (or any unexpected error) for Pub/Sub to redeliver; turns a
    PermanentError into ``Failed`` and returns, so the message is acknowledged.
    """
    try:
        ticket = store.update(
            ticket_id,
            lambda t: domain.ticket.claim(
                t,
                now=clock(),
                lease_seconds=options.processing_lease_seconds,
                max_attempts=options.max_delivery_attempts,
            ),
        )
    except domain.Unchanged as unchanged:
        resend_writeback(unchanged.ticket, writeback)
        return Outcome(Action.SKIPPED, ticket_id, unchanged.ticket.status, unchanged.reason)
    if ticket.status is Status.FAILED:
        log.error("ticket failed", extra={"ticket_id": ticket_id, "reason": ticket.last_error})
        metrics.FAILURES.labels("attempts_exhausted").inc()
        metrics.TICKETS.labels(Status.FAILED.value).inc()
        return Outcome(Action.FAILED, ticket_id, Status.FAILED, ticket.last_error or "")

    started = time.perf_counter()
    try:
        classification, entry = _classify(
            ticket,
            embedder=embedder,
            memory=memory,
            classifier=classifier,
            taxonomy=taxonomy,
            options=options,
            fallback=fallback,
            verifier=verifier,
            calibration=calibrations.get(ticket.tenant) if calibrations is not None else None,
            evidence=evidence,
        )
        # Always: the record is written even when the index is down (then the reconciler indexes it).
        classification = _remember(memory, entry, classification, options)
        try:
            final = store.update(
                ticket_id,
                lambda t: with_writeback(domain.ticket.complete(t, classification, now=clock()), writeback, clock),
            )
        except domain.Unchanged as unchanged:
            final = unchanged.ticket
            if final.status in REVIEWED and final.labels:
                # A human corrected the ticket while we worked: the memory keeps their labels.
                memory.remember(dataclasses.replace(entry, labels=final.labels, label_source=LabelSource.HUMAN))
            return Outcome(Action.SKIPPED, ticket_id, final.status, f"answer discarded: {unchanged.reason}")
    except PermanentError as error:
        reason = f"{type(error).__name__}: {error}"
        try:
            failed = store.update(ticket_id, lambda t: domain.ticket.fail(t, reason, now=clock()))
        except domain.Unchanged as unchanged:
            failed = unchanged.ticket
        log.error("ticket failed", extra={"ticket_id": ticket_id, "reason": reason})
        metrics.FAILURES.labels(type(error).__name__).inc()
        metrics.TICKETS.labels(failed.status.value).inc()
        return Outcome(Action.FAILED, ticket_id, failed.status, reason)
    except ClassifierMisconfigured as error:
        # No fallback (CLASSIFIER_FALLBACK=none): acknowledged, so no redelivery counts towards
        # the dead-letter limit; the reconciler sends it again until the credentials are fixed.
        refused = str(error)
        try:
            waiting = store.update(ticket_id, lambda t: domain.ticket.wait_for_configuration(t, refused, now=clock()))
        except domain.Unchanged as unchanged:
            waiting = unchanged.ticket
        log.critical("ticket waits for the classifier's configuration", extra={"ticket_id": ticket_id})
        return Outcome(Action.WAITING, ticket_id, waiting.status, refused)
    except Exception as error:
        _note_error(ticket_id, error, store=store, clock=clock)
        raise
    resend_writeback(final, writeback)
    if classification.path is AnswerPath.MEMORY and publisher is not None:
        _send_to_audit(final, publisher, options.audit_rate)

    elapsed = time.perf_counter() - started
    metrics.TICKETS.labels(final.status.value).inc()
    metrics.MEMORY_LOOKUPS.labels("hit" if classification.path is AnswerPath.MEMORY else "miss").inc()
    metrics.CLASSIFY_SECONDS.labels(classification.path.value).observe(elapsed)
    for direction, tokens in (("input", classification.input_tokens), ("output", classification.output_tokens)):
        if tokens:
            metrics.LLM_TOKENS.labels(classification.classifier, direction).inc(tokens)
    log.info(
        "ticket classified",
        extra={
            "ticket_id": ticket_id,
            "source": final.source or "api",
            "tenant": final.tenant,
            "status": final.status.value,
            "path": classification.path.value,
            "classifier": classification.classifier,
            "similarity": classification.similarity,
            "confidence": classification.confidence,
            "latency_ms": round(elapsed * 1000, 1),
            "input_tokens": classification.input_tokens,
            "output_tokens": classification.output_tokens,
            "attempt": ticket.attempts,
            "needs_review": classification.needs_review,
            "degraded": list(classification.degraded),
            "probabilities": dict(classification.probabilities),
        },
    )
    return Outcome(Action.CLASSIFIED, ticket_id, final.status)


def _send_to_audit(ticket: Ticket, publisher: Publisher, rate: float) -> None:
    """Ask the classifier of record about this memory answer in the background, for a fixed
    share of tickets (chosen by id, so a redelivery makes the same choice). A lost audit
    message loses one sample, never a ticket: it is logged, not retried."""
    if not policy.sampled_for_audit(ticket.ticket_id, rate):
        return
    try:
        publisher.publish(ticket.ticket_id, MessageKind.AUDIT)
    except TransientError as error:
        log.warning("audit not queued", extra={"ticket_id": ticket.ticket_id, "error": str(error)})


def _remember(
    memory: Memory, entry: MemoryEntry, classification: Classification, options: ProcessingOptions
) -> Classification:
    try:
        memory.remember(entry)
        return classification
    except MemoryUnavailable as error:
        if options.memory_unavailable != "classify":
            raise
        # The labels stand; the reconciler puts the ticket into the memory later.
        noted = error if not classification.degraded else "still unavailable"
        return dataclasses.replace(
            classification,
            remembered=False,
            degraded=(*classification.degraded, f"memory unavailable when storing the ticket ({noted})"),
        )


def _classify(
    ticket: Ticket,
    *,
    embedder: Embedder,
    memory: Memory,
    classifier: Classifier,
    taxonomy: Taxonomy,
    options: ProcessingOptions,
    fallback: Classifier | None = None,
    verifier: Verifier | None = None,
    calibration: decision.Calibration | None = None,
    evidence: EvidenceSource | None = None,
) -> tuple[Classification, MemoryEntry]:
    text = options.model_text(ticket)
    embedding = embedder.embed([text])[0]
    degraded: list[str] = []
    try:
        found = memory.nearest(embedding, tenant=ticket.tenant, limit=options.memory_neighbours + 1)
    except MemoryIndexMissing as error:
        # The memory is on record but its index is gone: no answer from it, and the ticket is
        # still recorded (the rebuild indexes it).
        found = []
        degraded.append(f"{error}; classified without the memory")
    except MemoryUnavailable as error:
        if options.memory_unavailable != "classify":
            raise
        found = []
        degraded.append(f"memory unavailable ({error}); classified without it")
    # A crashed earlier attempt may have stored this very ticket already.
    neighbours = [n for n in found if n.ticket_id != ticket.ticket_id][: options.memory_neighbours]
    request = ClassificationRequest(
        text=text,
        embedding=embedding,
        examples=policy.select_examples(
            neighbours, max_examples=options.few_shot_max_examples, max_chars=options.few_shot_max_chars
        ),
        taxonomy=taxonomy,
        neighbours=neighbours,
        tenant=ticket.tenant,
    )
    if calibration is not None and evidence is not None:
        answer = from_memory.calibrated(request, evidence, calibration)
    else:
        answer = from_memory.fixed(neighbours, options.memory_policy)
    if answer is not None:
        classification, matched = answer
        source_ticket_id = matched.source_ticket_id or matched.ticket_id
        label_source = LabelSource.MEMORY
    else:
        classification = _ask(classifier, request, fallback, degraded)
        if verifier is not None and classification.classifier == classifier.name:
            classification = dataclasses.replace(
                classification, confidence=verifier.agreement(request, classification.labels)
            )
        classification = dataclasses.replace(
            classification,
            example_ticket_ids=tuple(e.ticket_id for e in request.examples),
            similarity=round(neighbours[0].similarity, 4) if neighbours else None,
        )
        source_ticket_id = None
        label_source = LabelSource.MODEL
    classification = dataclasses.replace(classification, degraded=(*classification.degraded, *degraded))
    entry = MemoryEntry(
        ticket_id=ticket.ticket_id,
        tenant=ticket.tenant,
        embedding=embedding,
        text=text,
        labels=classification.labels,
        label_source=label_source,
        source_ticket_id=source_ticket_id,
    )
    return classification, entry


def _ask(
    classifier: Classifier, request: ClassificationRequest, fallback: Classifier | None, degraded: list[str]
) -> Classification:
    """The classifier's answer; the fallback's, flagged for review, when the classifier is unavailable."""
    called = time.perf_counter()
    try:
        classification = classifier.classify(request)
        metrics.LLM_CALLS.labels(classifier.name, "ok").inc()
        return classification
    except ClassifierUnavailable as error:
        metrics.LLM_CALLS.labels(classifier.name, "unavailable").inc()
        if fallback is None:
            raise
        degraded.append(f"{classifier.name} unavailable ({error}); answered by {fallback.name}")
        metrics.LLM_CALLS.labels(fallback.name, "fallback").inc()
        return dataclasses.replace(fallback.classify(request), needs_review=True)
    except InvalidModelOutput:
        metrics.LLM_CALLS.labels(classifier.name, "invalid_output").inc()
        raise
    finally:
        metrics.LLM_LATENCY.labels(classifier.name).observe(time.perf_counter() - called)


def _note_error(ticket_id: str, error: Exception, *, store: Tickets, clock: Clock) -> None:
    metrics.RETRIES.inc()
    message = f"{type(error).__name__}: {error}"[:1000]
    log.warning("attempt failed; Pub/Sub will redeliver", extra={"ticket_id": ticket_id, "error": message})
    try:
        store.update(ticket_id, lambda t: domain.ticket.note_error(t, message, now=clock()))
    except (domain.Unchanged, TransientError, UnknownTicket):
        pass
    except Exception:  # the store itself may be what failed; the original error matters more
        log.warning("could not record the failed attempt", extra={"ticket_id": ticket_id}, exc_info=True)


def remember(
    ticket_id: str,
    *,
    store: Tickets,
    embedder: Embedder,
    memory: Memory,
    clock: Clock,
    options: ProcessingOptions = ProcessingOptions(),
) -> Outcome:
    """Bring the memory in line with the ticket's labels in force: after a correction, or
    when the memory was down as the ticket was classified."""
    ticket = store.get(ticket_id)
    if ticket is None:
        raise UnknownTicket(f"no ticket with id {ticket_id!r}")
    labels = ticket.labels
    if labels is None:
        return Outcome(Action.SKIPPED, ticket_id, ticket.status, "no labels yet")
    label_source = LabelSource.HUMAN if ticket.status in REVIEWED else LabelSource.MODEL
    # One memory write: an entry the memory holds is relabelled (with those answered from it);
    # one it lacks is embedded and stored.
    if not memory.relabel(ticket.ticket_id, tenant=ticket.tenant, labels=labels, label_source=label_source):
        text = options.model_text(ticket)
        memory.remember(
            MemoryEntry(
                ticket_id=ticket.ticket_id,
                tenant=ticket.tenant,
                embedding=embedder.embed([text])[0],
                text=text,
                labels=labels,
                label_source=label_source,
            )
        )
    if ticket.classification is not None and not ticket.classification.remembered:
        try:
            store.update(ticket_id, lambda t: domain.ticket.mark_remembered(t, now=clock()))
        except domain.Unchanged:
            pass
    return Outcome(Action.REMEMBERED, ticket_id, ticket.status)


def warm_up(ticket_id: str = "", *, embedder: Embedder) -> Outcome:
    """Load the embedding model now, so the first ticket does not pay for it (carries no ticket)."""
    embedder.embed(["warm up"])
    return Outcome(Action.WARMED_UP, ticket_id)
