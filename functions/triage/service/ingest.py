"""Taking tickets in: from the API (``ingest``) and from a source's webhook (``ingest_event``).

A ticket is stored as Pending and its work message published before the caller hears
202; if the publish fails the ticket is deleted again, so a ticket either exists and is
on its way to the worker or does not exist. Every submission is idempotent: its id is
derived from the source's own id or the caller's Idempotency-Key.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from .. import domain, metrics
from ..domain import MessageKind, Status, Submission, Ticket, ticket_id_for
from ..errors import Conflict, TransientError
from ..ports import Clock, DeliveryLog, Publisher, Tickets
from ..sources import EventAction, SourceEvent

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IntakeOptions:
    # Longer than a publish may take: a ticket unpublished after this is one whose first
    # request died before its publish was acknowledged.
    in_flight_for: timedelta = timedelta(seconds=30)
    # Applied to the text before it is stored: the redaction, unless STORE_ORIGINAL_TEXT.
    redact: Callable[[str], str] = lambda text: text


@dataclasses.dataclass(frozen=True)
class IngestResult:
    ticket: Ticket
    created: bool


def ingest(
    submission: Submission,
    *,
    store: Tickets,
    publisher: Publisher,
    clock: Clock,
    intake: IntakeOptions = IntakeOptions(),
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> IngestResult:
    """Store the ticket as Pending and publish it; return once Pub/Sub has acknowledged.

    A repeated submission (same source and external id, or same Idempotency-Key) returns
    the ticket already made and publishes nothing, unless the first attempt stored the
    ticket and died without seeing its publish acknowledged (the ticket is still
    unpublished after ``intake.in_flight_for``), in which case it publishes now.
    """
    natural_key = submission.natural_key()
    ticket = domain.new_ticket(
        submission,
        ticket_id=ticket_id_for(natural_key) if natural_key else new_id(),
        now=clock(),
        redact=intake.redact,
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
        if existing.published or clock() - existing.created_at < intake.in_flight_for:
            # Published, or the first request is still publishing it: either way it is on its way.
            log.info("duplicate submission", extra={"ticket_id": existing.ticket_id, "status": existing.status.value})
            return IngestResult(existing, created=False)
        # The first request stored it but died before its publish was acknowledged.
        log.warning("completing the publish of an earlier submission", extra={"ticket_id": existing.ticket_id})
        return IngestResult(publish(existing, store=store, publisher=publisher, clock=clock, undo=False), False)
    published = publish(ticket, store=store, publisher=publisher, clock=clock, undo=True)
    metrics.TICKETS.labels(published.status.value).inc()
    log.info(
        "ticket accepted",
        extra={"ticket_id": published.ticket_id, "source": published.source or "api", "tenant": published.tenant},
    )
    return IngestResult(published, created=True)


def publish(ticket: Ticket, *, store: Tickets, publisher: Publisher, clock: Clock, undo: bool) -> Ticket:
    """Publish the ticket's classify message and record that it went out.

    ``undo``: delete the ticket if the publish fails (it was created by this request).
    """
    try:
        publisher.publish(ticket.ticket_id, MessageKind.CLASSIFY)
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


# --------------------------------------------------------------------------- webhooks


class EventOutcome(enum.StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    RETRIAGED = "retriaged"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"


@dataclasses.dataclass(frozen=True)
class EventResult:
    action: EventOutcome
    ticket: Ticket | None = None
    reason: str = ""
    ticket_id: str | None = None  # known even before the ticket is visible (a concurrent duplicate)

    def __post_init__(self) -> None:
        if self.ticket is not None and self.ticket_id is None:
            object.__setattr__(self, "ticket_id", self.ticket.ticket_id)


class Store(Tickets, DeliveryLog, Protocol):
    """What taking a webhook needs of the store: tickets and the log of deliveries."""


def ingest_event(
    event: SourceEvent,
    *,
    delivery_id: str | None,
    store: Store,
    publisher: Publisher,
    clock: Clock,
    intake: IntakeOptions = IntakeOptions(),
) -> EventResult:
    """Take one webhook delivery: create the ticket, or re-triage it when its text changed.

    A delivery id seen before (the source retrying) is answered as a duplicate and does
    nothing; if taking the delivery fails, its id is released so the retry can succeed.
    """
    submission = event.submission
    if event.action is EventAction.IGNORE or submission is None:
        return EventResult(EventOutcome.IGNORED, reason=event.reason)
    source = submission.source or "unknown"
    natural_key = submission.natural_key()
    if delivery_id and not store.claim_delivery(source, delivery_id):
        ticket_id = ticket_id_for(natural_key) if natural_key else None
        existing = store.get(ticket_id) if ticket_id else None
        return EventResult(EventOutcome.DUPLICATE, existing, f"delivery {delivery_id} was already received", ticket_id)
    try:
        existing = store.get(ticket_id_for(natural_key)) if natural_key else None
        if event.action is EventAction.UPDATE and existing is not None:
            return _retriage(existing, submission, store=store, publisher=publisher, clock=clock, intake=intake)
        result = ingest(submission, store=store, publisher=publisher, clock=clock, intake=intake)
        return EventResult(EventOutcome.CREATED if result.created else EventOutcome.DUPLICATE, result.ticket)
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
    store: Tickets,
    publisher: Publisher,
    clock: Clock,
    intake: IntakeOptions,
) -> EventResult:
    try:
        ticket = store.update(
            existing.ticket_id,
            lambda t: domain.ticket.retriage(
                t,
                title=intake.redact(submission.title),
                description=intake.redact(submission.description),
                fingerprint=submission.fingerprint(),
                now=clock(),
            ),
        )
    except domain.Unchanged as unchanged:
        ticket = unchanged.ticket
        if ticket.status is not Status.PENDING or ticket.published:
            return EventResult(EventOutcome.UNCHANGED, ticket, unchanged.reason)
        # An earlier delivery of this change died before its publish: finish it.
    if ticket.status is not Status.PENDING:
        return EventResult(
            EventOutcome.UNCHANGED, ticket, "a human corrected this ticket: the new text is kept, not re-triaged"
        )
    published = publish(ticket, store=store, publisher=publisher, clock=clock, undo=False)
    log.info("ticket re-triaged", extra={"ticket_id": ticket.ticket_id, "revision": ticket.revision})
    return EventResult(EventOutcome.RETRIAGED, published)
