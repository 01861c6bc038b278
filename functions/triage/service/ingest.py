"""Taking tickets in: from the API (``ingest``) and from a source's webhook (``ingest_event``).

A ticket is stored as Pending and its work message published before the caller hears
202; if the publish fails the ticket is deleted again, so a ticket either exists and is
on its way to the worker or does not exist. Every submission is idempotent: its id is
derived from the source's own id or the caller's Idempotency-Key.

Two round trips, no more: the create and the acknowledged publish. Nothing records that the
publish happened. A request that dies between the two leaves a Pending ticket that no
message names; the caller's retry publishes it (below), and without a retry the reconciler
publishes it again once it has been Pending for RECONCILE_AFTER_SECONDS.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from .. import domain, metrics
from ..domain import MessageKind, Status, Submission, Ticket, ticket_id_for
from ..errors import Conflict, TransientError
from ..ports import Clock, DeliveryLog, Publisher, Tickets
from ..sources import EventAction, SourceEvent

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IntakeOptions:
    # Longer than a publish may take: a ticket untouched for this long and never delivered may
    # be one whose first request died before its publish was acknowledged.
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
    the ticket already made and publishes nothing, unless the first attempt may have stored
    the ticket and died before its publish was acknowledged (``_maybe_unpublished``): then
    it publishes now. At worst that sends a second message for a ticket still queued, which
    the worker's claim turns into nothing.
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
        if not _maybe_unpublished(existing, clock(), intake):
            # Delivered, or the first request may still be publishing it: either way it is on its way.
            log.info("duplicate submission", extra={"ticket_id": existing.ticket_id, "status": existing.status.value})
            return IngestResult(existing, created=False)
        log.warning("publishing an earlier submission again", extra={"ticket_id": existing.ticket_id})
        return IngestResult(publish(existing, store=store, publisher=publisher, undo=False), False)
    publish(ticket, store=store, publisher=publisher, undo=True)
    metrics.TICKETS.labels(ticket.status.value).inc()
    log.info(
        "ticket accepted",
        extra={"ticket_id": ticket.ticket_id, "source": ticket.source or "api", "tenant": ticket.tenant},
    )
    return IngestResult(ticket, created=True)


def _maybe_unpublished(ticket: Ticket, now: datetime, intake: IntakeOptions) -> bool:
    """Whether no message for this ticket may have been acknowledged: it is Pending, no delivery
    has reached the worker (no attempt), and it has been untouched for longer than a publish
    may take (so no request is publishing it now)."""
    return (
        ticket.status is Status.PENDING
        and not ticket.published  # what the first version recorded
        and ticket.attempts == 0
        and now - ticket.updated_at >= intake.in_flight_for
    )


def publish(ticket: Ticket, *, store: Tickets, publisher: Publisher, undo: bool) -> Ticket:
    """Publish the ticket's classify message; return once Pub/Sub has acknowledged it.

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
                    "publish failed and the ticket could not be deleted; it stays Pending until the reconciler"
                    " publishes it",
                    extra={"ticket_id": ticket.ticket_id},
                )
        raise
    return ticket


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
        if not _maybe_unpublished(ticket, clock(), intake):
            return EventResult(EventOutcome.UNCHANGED, ticket, unchanged.reason)
        # An earlier delivery of this change may have died before its publish: finish it.
    if ticket.status is not Status.PENDING:
        return EventResult(
            EventOutcome.UNCHANGED, ticket, "a human corrected this ticket: the new text is kept, not re-triaged"
        )
    publish(ticket, store=store, publisher=publisher, undo=False)
    log.info("ticket re-triaged", extra={"ticket_id": ticket.ticket_id, "revision": ticket.revision})
    return EventResult(EventOutcome.RETRIAGED, ticket)
