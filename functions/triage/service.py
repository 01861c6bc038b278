"""The engine's three use cases: ingest a ticket, process it, record a human's correction.

Orchestration only: each function takes its collaborators as arguments (ports,
never adapters) and leaves the rules to ``domain`` and ``policy``. This module
must never import a client library or read the environment.

Delivery is at-least-once everywhere, so every step is idempotent: a ticket id is
derived from the caller's idempotency key, the worker claims a ticket before work
and records its answer only if the ticket is still Pending, and memory writes are
upserts by ticket id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import domain, messages, metrics, policy
from .domain import Classification, Labels, LabelSource, MemoryEntry, Path, Status, Taxonomy, Ticket
from .errors import (
    ClassifierUnavailable,
    Conflict,
    InvalidLabels,
    InvalidModelOutput,
    MemoryUnavailable,
    NotFound,
    PermanentError,
    TransientError,
    UnknownTicket,
    WritebackFailed,
)
from .ports import (
    ClassificationRequest,
    Classifier,
    Clock,
    Embedder,
    Memory,
    Publisher,
    TicketStore,
    WritebackTarget,
)

log = logging.getLogger(__name__)

CLASSIFY = "classify"
REMEMBER = "remember"
WRITE_BACK = "write_back"
WARM_UP = messages.WARM_UP
RECONCILE = messages.RECONCILE
MESSAGE_KINDS = (CLASSIFY, REMEMBER, WRITE_BACK, WARM_UP, RECONCILE)


@dataclasses.dataclass(frozen=True)
class WritebackQueue:
    """Which sources get labels written back, and the topic that carries that work."""

    sources: frozenset[str]
    publisher: Publisher

    def wants(self, ticket: Ticket) -> bool:
        return ticket.source in self.sources and ticket.labels is not None


# --------------------------------------------------------------------------- ingest


@dataclasses.dataclass(frozen=True)
class Submission:
    title: str
    description: str = ""
    source: str | None = None
    external_id: str | None = None
    reporter: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    idempotency_key: str | None = None
    tenant: str = "default"

    def fingerprint(self) -> str:
        content = {
            "title": self.title,
            "description": self.description,
            "source": self.source,
            "external_id": self.external_id,
            "reporter": self.reporter,
            "metadata": self.metadata,
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def natural_key(self) -> str | None:
        """What makes two submissions the same ticket: the source's own id, else the caller's key."""
        if self.source and self.external_id:
            return f"external\x00{self.tenant}\x00{self.source}\x00{self.external_id}"
        if self.idempotency_key:
            return f"idempotency\x00{self.tenant}\x00{self.idempotency_key}"
        return None


@dataclasses.dataclass(frozen=True)
class IngestResult:
    ticket: Ticket
    created: bool


def ticket_id_for(natural_key: str) -> str:
    return hashlib.sha256(natural_key.encode()).hexdigest()[:32]


def ingest(
    submission: Submission,
    *,
    store: TicketStore,
    publisher: Publisher,
    clock: Clock,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    in_flight_for: timedelta = timedelta(seconds=30),
    redact: Callable[[str], str] = lambda text: text,
) -> IngestResult:
    """Store the ticket as Pending and publish it; return once Pub/Sub has acknowledged.

    If the publish fails the ticket is deleted again, so a ticket either exists and
    is on its way to the worker or does not exist; the caller retries. A repeated
    submission (same source and external id, or same Idempotency-Key) returns the
    ticket already made and publishes nothing, unless the first attempt stored the
    ticket and died without seeing its publish acknowledged (the ticket is still
    unpublished after ``in_flight_for``, longer than a publish may take), in which
    case it publishes now.
    """
    natural_key = submission.natural_key()
    now = clock()
    ticket = Ticket(
        ticket_id=ticket_id_for(natural_key) if natural_key else new_id(),
        tenant=submission.tenant,
        # Stored redacted unless STORE_ORIGINAL_TEXT; the fingerprint is of what the caller sent.
        title=redact(submission.title),
        description=redact(submission.description),
        source=submission.source,
        external_id=submission.external_id,
        reporter=submission.reporter,
        metadata=dict(submission.metadata),
        fingerprint=submission.fingerprint(),
        created_at=now,
        updated_at=now,
    )
    existing = store.create(ticket)
    if existing is not None:
        if (
            submission.idempotency_key
            and not (submission.source and submission.external_id)
            and existing.fingerprint != ticket.fingerprint
        ):
            raise Conflict(
                "this Idempotency-Key was already used with a different request body",
                code="idempotency_key_reused",
            )
        if existing.published or clock() - existing.created_at < in_flight_for:
            # Published, or the first request is still publishing it: either way it is on its way.
            log.info("duplicate submission", extra={"ticket_id": existing.ticket_id, "status": existing.status.value})
            return IngestResult(existing, created=False)
        # The first request stored it but died before its publish was acknowledged.
        log.warning("completing the publish of an earlier submission", extra={"ticket_id": existing.ticket_id})
        return IngestResult(_publish(existing, store=store, publisher=publisher, clock=clock, undo=False), False)
    published = _publish(ticket, store=store, publisher=publisher, clock=clock, undo=True)
    metrics.TICKETS.labels(published.status.value).inc()
    log.info(
        "ticket accepted",
        extra={"ticket_id": published.ticket_id, "source": published.source or "api", "tenant": published.tenant},
    )
    return IngestResult(published, created=True)


def _publish(ticket: Ticket, *, store: TicketStore, publisher: Publisher, clock: Clock, undo: bool) -> Ticket:
    try:
        publisher.publish(ticket.ticket_id, CLASSIFY)
    except TransientError:
        if undo:
            try:
                store.delete(ticket.ticket_id)
            except TransientError:
                log.error(
                    "publish failed and the ticket could not be deleted; it stays Pending unpublished",
                    extra={"ticket_id": ticket.ticket_id},
                )
        raise
    try:
        store.mark_published(ticket.ticket_id, clock())
    except TransientError:
        # The message is out, so the worker will process the ticket; only the flag that
        # stops a late duplicate submission from publishing again is missing.
        log.warning("published but could not record it", extra={"ticket_id": ticket.ticket_id})
    return dataclasses.replace(ticket, published=True)


def get_ticket(ticket_id: str, *, store: TicketStore) -> Ticket:
    ticket = store.get(ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket with id {ticket_id!r}")
    return ticket


# --------------------------------------------------------------------------- process


@dataclasses.dataclass(frozen=True)
class ProcessingOptions:
    memory_policy: policy.MemoryPolicy = dataclasses.field(default_factory=policy.MemoryPolicy)
    memory_neighbours: int = 10
    few_shot_max_examples: int = 8
    few_shot_max_chars: int = 6_000
    model_text_max_chars: int = 4_000
    processing_lease_seconds: float = 120.0
    max_delivery_attempts: int = 5
    redact: Callable[[str], str] = lambda text: text  # before the text reaches the embedder, LLM or memory
    # Degraded modes: without the memory, classify anyway ("classify") or wait for it ("retry").
    memory_unavailable: str = "classify"

    def model_text(self, ticket: Ticket) -> str:
        # Redact the whole text, then cut: a cut must never leave half a secret behind.
        return self.redact(ticket.model_text(10**9))[: self.model_text_max_chars]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one delivery did, for the log and the tests."""

    action: str  # classified | skipped | failed | remembered
    ticket_id: str
    status: Status | None = None
    detail: str = ""


def process(
    ticket_id: str,
    *,
    store: TicketStore,
    embedder: Embedder,
    memory: Memory,
    classifier: Classifier,
    taxonomy: Taxonomy,
    clock: Clock,
    options: ProcessingOptions = ProcessingOptions(),
    writeback: WritebackQueue | None = None,
    fallback: Classifier | None = None,
) -> Outcome:
    """Classify one ticket, from memory when the evidence is strong, else with the classifier.

    Degraded modes, recorded on the ticket: with the memory unreachable the ticket is
    classified without it (``options.memory_unavailable == "classify"``); with the
    classifier unavailable after its retries, ``fallback`` answers and the ticket is
    flagged for review.

    Raises TransientError (or any unexpected error) for Pub/Sub to redeliver; turns a
    PermanentError into ``Failed`` and returns, so the message is acknowledged.
    """
    try:
        ticket = store.update(
            ticket_id,
            lambda t: domain.claim(
                t,
                now=clock(),
                lease_seconds=options.processing_lease_seconds,
                max_attempts=options.max_delivery_attempts,
            ),
        )
    except domain.Unchanged as unchanged:
        _resend_writeback(unchanged.ticket, writeback)
        return Outcome("skipped", ticket_id, unchanged.ticket.status, unchanged.reason)
    if ticket.status is Status.FAILED:
        log.error("ticket failed", extra={"ticket_id": ticket_id, "reason": ticket.last_error})
        metrics.FAILURES.labels("attempts_exhausted").inc()
        metrics.TICKETS.labels(Status.FAILED.value).inc()
        return Outcome("failed", ticket_id, Status.FAILED, ticket.last_error or "")

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
        )
        if classification.remembered:
            classification = _remember(memory, entry, classification, options)
        try:
            final = store.update(
                ticket_id, lambda t: _with_writeback(domain.complete(t, classification, now=clock()), writeback, clock)
            )
        except domain.Unchanged as unchanged:
            final = unchanged.ticket
            if final.status is Status.CORRECTED_BY_HUMAN and final.labels:
                # A human corrected the ticket while we worked: the memory keeps their labels.
                memory.remember(dataclasses.replace(entry, labels=final.labels, label_source=LabelSource.HUMAN))
            return Outcome("skipped", ticket_id, final.status, f"answer discarded: {unchanged.reason}")
    except PermanentError as error:
        reason = f"{type(error).__name__}: {error}"
        try:
            failed = store.update(ticket_id, lambda t: domain.fail(t, reason, now=clock()))
        except domain.Unchanged as unchanged:
            failed = unchanged.ticket
        log.error("ticket failed", extra={"ticket_id": ticket_id, "reason": reason})
        metrics.FAILURES.labels(type(error).__name__).inc()
        metrics.TICKETS.labels(failed.status.value).inc()
        return Outcome("failed", ticket_id, failed.status, reason)
    except Exception as error:
        _note_error(ticket_id, error, store=store, clock=clock)
        raise
    _resend_writeback(final, writeback)

    elapsed = time.perf_counter() - started
    metrics.TICKETS.labels(final.status.value).inc()
    metrics.MEMORY_LOOKUPS.labels("hit" if classification.path is Path.MEMORY else "miss").inc()
    metrics.CLASSIFY_SECONDS.labels(classification.path.value).observe(elapsed)
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
        },
    )
    return Outcome("classified", ticket_id, final.status)


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
        return dataclasses.replace(
            classification,
            remembered=False,
            degraded=(*classification.degraded, f"memory unavailable when storing the ticket ({error})"),
        )


def _with_writeback(ticket: Ticket, writeback: WritebackQueue | None, clock: Clock) -> Ticket:
    """Ask, in the same transaction as the new labels, for them to be written to the source."""
    if writeback is None or not writeback.wants(ticket):
        return ticket
    try:
        return domain.request_writeback(ticket, now=clock())
    except domain.Unchanged:
        return ticket


def _resend_writeback(ticket: Ticket, writeback: WritebackQueue | None) -> None:
    """Queue a requested write-back. Also on a redelivery: the first delivery may have died
    between recording the labels and publishing."""
    if writeback is None or ticket.writeback is None or not writeback.wants(ticket):
        return
    if ticket.writeback.status is domain.WritebackStatus.PENDING:
        writeback.publisher.publish(ticket.ticket_id, WRITE_BACK)


def _classify(
    ticket: Ticket,
    *,
    embedder: Embedder,
    memory: Memory,
    classifier: Classifier,
    taxonomy: Taxonomy,
    options: ProcessingOptions,
    fallback: Classifier | None = None,
) -> tuple[Classification, MemoryEntry]:
    text = options.model_text(ticket)
    embedding = embedder.embed([text])[0]
    degraded: list[str] = []
    try:
        found = memory.nearest(embedding, tenant=ticket.tenant, limit=options.memory_neighbours + 1)
        remembered = True
    except MemoryUnavailable as error:
        if options.memory_unavailable != "classify":
            raise
        found, remembered = [], False
        degraded.append(f"memory unavailable ({error}); classified without it")
    # A crashed earlier attempt may have stored this very ticket already.
    neighbours = [n for n in found if n.ticket_id != ticket.ticket_id][: options.memory_neighbours]
    decision = policy.decide(neighbours, options.memory_policy)
    if decision.hit:
        assert decision.labels is not None and decision.matched is not None
        classification = Classification(
            labels=decision.labels,
            confidence=decision.confidence,
            rationale=f"Answered from memory: {decision.reason}.",
            path=Path.MEMORY,
            matched_ticket_id=decision.matched.ticket_id,
            similarity=round(decision.matched.similarity, 4),
        )
        source_ticket_id = decision.matched.source_ticket_id or decision.matched.ticket_id
        label_source = LabelSource.MEMORY
    else:
        examples = policy.select_examples(
            neighbours, max_examples=options.few_shot_max_examples, max_chars=options.few_shot_max_chars
        )
        request = ClassificationRequest(
            text=text,
            embedding=embedding,
            examples=examples,
            taxonomy=taxonomy,
            neighbours=neighbours,
            tenant=ticket.tenant,
        )
        called = time.perf_counter()
        try:
            classification = classifier.classify(request)
            metrics.LLM_CALLS.labels(classifier.name, "ok").inc()
        except ClassifierUnavailable as error:
            metrics.LLM_CALLS.labels(classifier.name, "unavailable").inc()
            if fallback is None:
                raise
            classification = dataclasses.replace(fallback.classify(request), needs_review=True)
            metrics.LLM_CALLS.labels(fallback.name, "fallback").inc()
            degraded.append(f"{classifier.name} unavailable ({error}); answered by {fallback.name}")
        except InvalidModelOutput:
            metrics.LLM_CALLS.labels(classifier.name, "invalid_output").inc()
            raise
        finally:
            metrics.LLM_LATENCY.labels(classifier.name).observe(time.perf_counter() - called)
        try:
            taxonomy.check(classification.labels)
        except InvalidLabels as error:
            raise InvalidModelOutput(f"{classifier.name} answered outside the taxonomy: {error}") from error
        classification = dataclasses.replace(
            classification,
            example_ticket_ids=tuple(e.ticket_id for e in examples),
            similarity=round(neighbours[0].similarity, 4) if neighbours else None,
        )
        source_ticket_id = None
        label_source = LabelSource.MODEL
    classification = dataclasses.replace(
        classification, degraded=(*classification.degraded, *degraded), remembered=remembered
    )
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


def _note_error(ticket_id: str, error: Exception, *, store: TicketStore, clock: Clock) -> None:
    metrics.RETRIES.inc()
    message = f"{type(error).__name__}: {error}"[:1000]
    log.warning("attempt failed; Pub/Sub will redeliver", extra={"ticket_id": ticket_id, "error": message})
    try:
        store.update(ticket_id, lambda t: domain.note_error(t, message, now=clock()))
    except (domain.Unchanged, TransientError, UnknownTicket):
        pass
    except Exception:  # the store itself may be what failed; the original error matters more
        log.warning("could not record the failed attempt", extra={"ticket_id": ticket_id}, exc_info=True)


def remember(
    ticket_id: str,
    *,
    store: TicketStore,
    embedder: Embedder,
    memory: Memory,
    options: ProcessingOptions = ProcessingOptions(),
    clock: Clock = lambda: datetime.now(UTC),
) -> Outcome:
    """Bring the memory in line with the ticket's labels in force: after a correction, or
    when the memory was down as the ticket was classified."""
    ticket = store.get(ticket_id)
    if ticket is None:
        raise UnknownTicket(f"no ticket with id {ticket_id!r}")
    labels = ticket.labels
    if labels is None:
        return Outcome("skipped", ticket_id, ticket.status, "no labels yet")
    label_source = LabelSource.HUMAN if ticket.status is Status.CORRECTED_BY_HUMAN else LabelSource.MODEL
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
    memory.relabel(ticket.ticket_id, tenant=ticket.tenant, labels=labels, label_source=label_source)
    if ticket.classification is not None and not ticket.classification.remembered:
        try:
            store.update(ticket_id, lambda t: domain.mark_remembered(t, now=clock()))
        except domain.Unchanged:
            pass
    return Outcome("remembered", ticket_id, ticket.status)


def warm_up(*, embedder: Embedder) -> Outcome:
    """Load the embedding model now, so the first ticket does not pay for it."""
    embedder.embed(["warm up"])
    return Outcome("warmed_up", "")


# --------------------------------------------------------------------------- write-back


def write_back(
    ticket_id: str,
    *,
    store: TicketStore,
    targets: Mapping[str, WritebackTarget],
    clock: Clock,
    lease_seconds: float = 120.0,
    max_attempts: int = 10,
) -> Outcome:
    """Write the labels in force to the ticket's source, or record why not.

    The source's refusal, or its failure after the client's retries, is recorded on the
    ticket and the message acknowledged: the classification itself is never touched.
    """
    try:
        ticket = store.update(
            ticket_id,
            lambda t: domain.begin_writeback(t, now=clock(), lease_seconds=lease_seconds, max_attempts=max_attempts),
        )
    except domain.Unchanged as unchanged:
        return Outcome("skipped", ticket_id, unchanged.ticket.status, unchanged.reason)
    state = ticket.writeback
    assert state is not None
    if state.status is domain.WritebackStatus.FAILED:
        log.error("write-back gave up", extra={"ticket_id": ticket_id, "error": state.last_error})
        return Outcome("written_back", ticket_id, ticket.status, state.status.value)
    target = targets.get(ticket.source or "")
    calls: tuple[Mapping[str, Any], ...] = ()
    written: Mapping[str, str] = {}
    skipped: tuple[str, ...] = ()
    error: str | None = None
    if target is None:
        status, error = domain.WritebackStatus.FAILED, f"write-back is not enabled for source {ticket.source!r}"
    else:
        sent: list[Mapping[str, Any]] = []
        try:
            plan = target.plan(ticket, target.client.read(ticket))
            skipped = plan.skipped
            if target.dry_run:
                status = domain.WritebackStatus.DRY_RUN
                sent = [call.record(target.client.base_url, None) for call in plan.calls]
            else:
                for call in plan.calls:
                    sent.append(call.record(target.client.base_url, target.client.send(call)))
                status = domain.WritebackStatus.DONE
            written = plan.written
        except WritebackFailed as failure:
            status, error = domain.WritebackStatus.FAILED, str(failure)
        calls = tuple(sent)
    final = store.update(
        ticket_id,
        lambda t: domain.finish_writeback(
            t,
            status=status,
            calls=calls,
            written=written,
            skipped=skipped,
            error=error,
            started_for=state.started_for,
            now=clock(),
        ),
    )
    log.log(
        logging.ERROR if status is domain.WritebackStatus.FAILED else logging.INFO,
        "write-back finished",
        extra={"ticket_id": ticket_id, "source": ticket.source, "writeback": status.value, "error": error},
    )
    return Outcome("written_back", ticket_id, final.status, status.value)


# --------------------------------------------------------------------------- recovery


@dataclasses.dataclass
class ReconcileReport:
    republished: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    writebacks: list[str] = dataclasses.field(default_factory=list)
    remembered: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: len(value) for name, value in dataclasses.asdict(self).items()} | {
            "ticket_ids": dataclasses.asdict(self)
        }


def reconcile(
    *,
    store: TicketStore,
    publisher: Publisher,
    clock: Clock,
    older_than: timedelta,
    limit: int = 500,
    max_republish: int = 3,
    writeback: WritebackQueue | None = None,
) -> ReconcileReport:
    """Find work that stopped and restart it, boundedly.

    * Pending tickets untouched for ``older_than`` are published again, at most
      ``max_republish`` times each; then they become Failed with the reason.
    * Write-backs pending that long are queued again (the write-back gives up by itself
      after its own attempts).
    * Tickets classified while the memory was down are put into the memory.
    """
    report = ReconcileReport()
    before = clock() - older_than
    for ticket in store.find(status=Status.PENDING, updated_before=before, limit=limit):
        try:
            updated = store.update(
                ticket.ticket_id, lambda t: domain.republish(t, now=clock(), max_republish=max_republish)
            )
        except domain.Unchanged:
            continue
        if updated.status is Status.FAILED:
            report.failed.append(ticket.ticket_id)
            log.error("stuck ticket failed", extra={"ticket_id": ticket.ticket_id, "reason": updated.last_error})
            continue
        publisher.publish(ticket.ticket_id, CLASSIFY)
        report.republished.append(ticket.ticket_id)
    if writeback is not None:
        for ticket in store.find(writeback_status=domain.WritebackStatus.PENDING, updated_before=before, limit=limit):
            if writeback.wants(ticket):
                writeback.publisher.publish(ticket.ticket_id, WRITE_BACK)
                report.writebacks.append(ticket.ticket_id)
    for ticket in store.find(remembered=False, limit=limit):
        publisher.publish(ticket.ticket_id, REMEMBER)
        report.remembered.append(ticket.ticket_id)
    log.info("reconciled", extra={k: len(v) for k, v in dataclasses.asdict(report).items()})
    return report


def replay_failed(
    ticket_ids: Sequence[str] | None,
    *,
    store: TicketStore,
    publisher: Publisher,
    clock: Clock,
    limit: int = 100,
) -> list[str]:
    """Send Failed tickets through the pipeline again: the given ones, or the oldest ``limit``."""
    if ticket_ids is None:
        ticket_ids = [t.ticket_id for t in store.find(status=Status.FAILED, limit=limit)]
    replayed = []
    for ticket_id in ticket_ids:
        try:
            store.update(ticket_id, lambda t: domain.replay(t, now=clock()))
        except (domain.Unchanged, UnknownTicket):
            continue
        publisher.publish(ticket_id, CLASSIFY)
        store.mark_published(ticket_id, clock())
        replayed.append(ticket_id)
    log.info("failed tickets replayed", extra={"count": len(replayed)})
    return replayed


def dead_letter(ticket_id: str, kind: str, deliveries: int, *, store: TicketStore, clock: Clock) -> Outcome:
    """A message Pub/Sub gave up on (dead-letter topic): the ticket or its write-back fails, with why."""
    try:
        if kind == WRITE_BACK:
            ticket = store.update(
                ticket_id,
                lambda t: domain.finish_writeback(
                    t,
                    status=domain.WritebackStatus.FAILED,
                    calls=t.writeback.calls if t.writeback else (),
                    written={},
                    skipped=(),
                    error=f"dead-lettered after {deliveries} deliveries",
                    started_for=None,
                    now=clock(),
                ),
            )
        elif kind == CLASSIFY:
            ticket = store.update(ticket_id, lambda t: domain.dead_letter(t, deliveries=deliveries, now=clock()))
        else:
            return Outcome("skipped", ticket_id, None, f"a dead-lettered {kind} message needs no action")
    except domain.Unchanged as unchanged:
        return Outcome("skipped", ticket_id, unchanged.ticket.status, unchanged.reason)
    log.error("message dead-lettered", extra={"ticket_id": ticket_id, "kind": kind, "deliveries": deliveries})
    return Outcome("dead_lettered", ticket_id, ticket.status, f"after {deliveries} deliveries")


# --------------------------------------------------------------------------- webhooks


@dataclasses.dataclass(frozen=True)
class EventResult:
    action: str  # created | duplicate | retriaged | unchanged | ignored
    ticket: Ticket | None = None
    reason: str = ""
    ticket_id: str | None = None  # known even before the ticket is visible (a concurrent duplicate)

    def __post_init__(self) -> None:
        if self.ticket is not None and self.ticket_id is None:
            object.__setattr__(self, "ticket_id", self.ticket.ticket_id)


def ingest_event(
    action: str,
    submission: Submission | None,
    *,
    delivery_id: str | None,
    store: TicketStore,
    publisher: Publisher,
    clock: Clock,
    reason: str = "",
    in_flight_for: timedelta = timedelta(seconds=30),
    redact: Callable[[str], str] = lambda text: text,
) -> EventResult:
    """Take one webhook delivery: create the ticket, or re-triage it when its text changed.

    A delivery id seen before (the source retrying) is answered as a duplicate and does
    nothing; if taking the delivery fails, its id is released so the retry can succeed.
    """
    if action == "ignore" or submission is None:
        return EventResult("ignored", reason=reason)
    source = submission.source or "unknown"
    natural_key = submission.natural_key()
    if delivery_id and not store.claim_delivery(source, delivery_id):
        ticket_id = ticket_id_for(natural_key) if natural_key else None
        existing = store.get(ticket_id) if ticket_id else None
        return EventResult("duplicate", existing, f"delivery {delivery_id} was already received", ticket_id)
    try:
        existing = store.get(ticket_id_for(natural_key)) if natural_key else None
        if action == "update" and existing is not None:
            return _retriage(existing, submission, store=store, publisher=publisher, clock=clock, redact=redact)
        result = ingest(
            submission, store=store, publisher=publisher, clock=clock, in_flight_for=in_flight_for, redact=redact
        )
        return EventResult("created" if result.created else "duplicate", result.ticket)
    except Exception:
        if delivery_id:
            try:
                store.release_delivery(source, delivery_id)
            except TransientError:
                log.warning("could not release a failed delivery", extra={"delivery_id": delivery_id})
        raise


def _retriage(
    existing: Ticket,
    submission: Submission,
    *,
    store: TicketStore,
    publisher: Publisher,
    clock: Clock,
    redact: Callable[[str], str],
) -> EventResult:
    try:
        ticket = store.update(
            existing.ticket_id,
            lambda t: domain.retriage(
                t,
                title=redact(submission.title),
                description=redact(submission.description),
                fingerprint=submission.fingerprint(),
                now=clock(),
            ),
        )
    except domain.Unchanged as unchanged:
        ticket = unchanged.ticket
        if ticket.status is not Status.PENDING or ticket.published:
            return EventResult("unchanged", ticket, unchanged.reason)
        # An earlier delivery of this change died before its publish: finish it.
    if ticket.status is not Status.PENDING:
        return EventResult("unchanged", ticket, "a human corrected this ticket: the new text is kept, not re-triaged")
    publisher.publish(ticket.ticket_id, CLASSIFY)
    try:
        store.mark_published(ticket.ticket_id, clock())
    except TransientError:
        log.warning("published but could not record it", extra={"ticket_id": ticket.ticket_id})
    log.info("ticket re-triaged", extra={"ticket_id": ticket.ticket_id, "revision": ticket.revision})
    return EventResult("retriaged", dataclasses.replace(ticket, published=True))


# --------------------------------------------------------------------------- feedback


@dataclasses.dataclass(frozen=True)
class Feedback:
    category: str
    priority: str | None = None
    assignment_group: str | None = None
    reviewer: str | None = None
    comment: str | None = None


def record_feedback(
    ticket_id: str,
    feedback: Feedback,
    *,
    store: TicketStore,
    memory: Memory,
    publisher: Publisher,
    taxonomy: Taxonomy,
    clock: Clock,
    writeback: WritebackQueue | None = None,
) -> Ticket:
    """Make a human's labels final and teach the memory at once.

    The memory entry (and every entry answered from it) is relabelled in place, so
    its old label is never served again. If the ticket is not in memory yet, or the
    memory is down, the worker is asked to do it; if even that cannot be queued the
    caller gets a 503 and may repeat the request, which does not add a second
    correction.
    """
    current = store.get(ticket_id)
    if current is None:
        raise NotFound(f"no ticket with id {ticket_id!r}")
    labels = _corrected_labels(current, feedback, taxonomy)

    def transition(ticket: Ticket) -> Ticket:
        latest = ticket.corrections[-1] if ticket.corrections else None
        if (
            latest is not None
            and latest.labels == labels
            and (latest.reviewer, latest.comment) == (feedback.reviewer, feedback.comment)
        ):
            raise domain.Unchanged(ticket, "the same correction is already recorded")
        corrected = domain.correct(ticket, labels, reviewer=feedback.reviewer, comment=feedback.comment, now=clock())
        return _with_writeback(corrected, writeback, clock)

    try:
        ticket = store.update(ticket_id, transition)
    except domain.Unchanged as unchanged:
        ticket = unchanged.ticket
    except UnknownTicket as error:
        raise NotFound(str(error)) from error

    relabelled = False
    try:
        relabelled = memory.relabel(ticket_id, tenant=ticket.tenant, labels=labels, label_source=LabelSource.HUMAN)
    except TransientError:
        log.warning("memory unavailable; the worker will apply the correction", extra={"ticket_id": ticket_id})
    if not relabelled:
        publisher.publish(ticket_id, REMEMBER)
    _resend_writeback(ticket, writeback)
    log.info(
        "ticket corrected",
        extra={"ticket_id": ticket_id, "status": ticket.status.value, "memory_updated": relabelled},
    )
    return ticket


def _corrected_labels(ticket: Ticket, feedback: Feedback, taxonomy: Taxonomy) -> Labels:
    current = ticket.labels
    priority = feedback.priority or (current.priority if current else taxonomy.default_priority)
    if feedback.assignment_group:
        group = feedback.assignment_group
    elif current and current.category == feedback.category:
        group = current.assignment_group
    else:
        # A new category usually means a new team: route to the category's own group.
        group = taxonomy.default_group_for(feedback.category)
    return taxonomy.check(Labels(category=feedback.category, priority=priority, assignment_group=group))


# --------------------------------------------------------------------------- operator figures


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def stats(
    *,
    store: TicketStore,
    now: datetime,
    window: timedelta,
    buckets: int = 12,
    price_per_1k_tokens: float = 0.0,
    tokens_per_call: int = 1500,
) -> dict[str, Any]:
    """What the engine did over ``window``, from the store (authoritative across instances).

    Counts are aggregation queries per status, per answering path and per time bucket;
    times come from a projection of the newest classified tickets. ``counts`` is by current
    status (a corrected ticket is Corrected_By_Human); memory and LLM figures are by the
    path that answered, which a correction does not change.
    """
    since = now - window
    counts = {status.value: store.count(status=status, since=since) for status in Status}
    step = window / buckets
    series = []
    for index in range(buckets):
        start = since + step * index
        # The last slice is open-ended, so the slices add up to the whole window.
        end = None if index == buckets - 1 else since + step * (index + 1)
        series.append(
            {
                "start": start.isoformat(),
                "memory": store.count(path=Path.MEMORY, since=start, until=end),
                "llm": store.count(path=Path.CLASSIFIER, since=start, until=end),
            }
        )
    from_memory, by_llm = sum(b["memory"] for b in series), sum(b["llm"] for b in series)
    answered = from_memory + by_llm
    calls, input_tokens, output_tokens = store.token_totals(since=since)
    measured = calls > 0 and input_tokens + output_tokens > 0
    per_call = (input_tokens + output_tokens) / calls if measured else tokens_per_call
    times = store.classification_times(since=since)
    return {
        "window_seconds": int(window.total_seconds()),
        "since": since.isoformat(),
        "counts": counts,
        "total": sum(counts.values()),
        "memory_hit_ratio": round(from_memory / answered, 4) if answered else None,
        "llm_calls": by_llm,
        "llm_calls_avoided": from_memory,
        "tokens_per_llm_call": round(per_call, 1),
        "tokens_per_llm_call_measured": measured,
        "estimated_savings": round(from_memory * per_call / 1000 * price_per_1k_tokens, 4),
        "time_to_classification_ms": {
            "p50": _percentile(times, 0.50),
            "p95": _percentile(times, 0.95),
            "tickets": len(times),
        },
        "series": series,
    }
