"""A reviewer's verdict: a correction (new labels) or a confirmation (the labels are right).
Either way the ticket's labels become final, the memory learns at once, and a memory answer's
outcome is measured (a confirmation counts it right, a correction wrong for each label changed)."""

from __future__ import annotations

import dataclasses
import logging

from .. import domain, metrics
from ..domain import Labels, LabelSource, MessageKind, Status, Taxonomy, Ticket
from ..errors import Conflict, NotFound, TransientError, UnknownTicket
from ..ports import Calibrations, Clock, Memory, Publisher, Tickets
from .audit import record_outcomes, reviewed_outcomes
from .writeback import WritebackQueue, resend_writeback, with_writeback

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Feedback:
    """New labels (``category`` None: a confirmation of the labels in force)."""

    category: str | None
    priority: str | None = None
    assignment_group: str | None = None
    reviewer: str | None = None
    comment: str | None = None


def record_feedback(
    ticket_id: str,
    feedback: Feedback,
    *,
    store: Tickets,
    memory: Memory,
    publisher: Publisher,
    taxonomy: Taxonomy,
    clock: Clock,
    writeback: WritebackQueue | None = None,
    calibrations: Calibrations | None = None,
) -> Ticket:
    """Make a human's labels final and teach the memory at once.

    Labels outside the taxonomy are refused (422), as is a ticket still Pending (409): nothing
    changes then. The memory entry (and every entry answered from it) is relabelled in place,
    so its old label is never served again. If the ticket is not in memory yet, or the memory
    is down, the worker is asked to do it; if even that cannot be queued the caller gets a 503
    and may repeat the request, which does not add a second verdict.
    """
    current = store.get(ticket_id)
    if current is None:
        raise NotFound(f"no ticket with id {ticket_id!r}")
    if feedback.category is None:
        _reviewable(current, feedback)
    labels = _corrected_labels(current, feedback, taxonomy)  # labels outside the taxonomy: 422 first
    _reviewable(current, feedback)

    def transition(ticket: Ticket) -> Ticket:
        _reviewable(ticket, feedback)
        latest = ticket.corrections[-1] if ticket.corrections else None
        if (
            latest is not None
            and latest.labels == labels
            and (latest.reviewer, latest.comment) == (feedback.reviewer, feedback.comment)
        ):
            raise domain.Unchanged(ticket, "the same verdict is already recorded")
        corrected = domain.ticket.correct(
            ticket, labels, reviewer=feedback.reviewer, comment=feedback.comment, now=clock()
        )
        return with_writeback(corrected, writeback, clock)

    try:
        ticket = store.update(ticket_id, transition)
    except domain.Unchanged as unchanged:
        ticket = unchanged.ticket
    except UnknownTicket as error:
        raise NotFound(str(error)) from error

    correct, verdict = reviewed_outcomes(current, ticket)
    try:
        record_outcomes(ticket, correct, verdict, calibrations=calibrations)
    except TransientError:  # the verdict stands; only its measurement is lost
        log.warning("outcome of the memory answer not recorded", extra={"ticket_id": ticket_id}, exc_info=True)
    relabelled = False
    try:
        relabelled = memory.relabel(ticket_id, tenant=ticket.tenant, labels=labels, label_source=LabelSource.HUMAN)
    except TransientError:
        log.warning("memory unavailable; the worker will apply the verdict", extra={"ticket_id": ticket_id})
    if not relabelled:
        publisher.publish(ticket_id, MessageKind.REMEMBER)
    resend_writeback(ticket, writeback)
    metrics.REVIEWS.labels(verdict).inc()
    log.info(
        "ticket reviewed",
        extra={"ticket_id": ticket_id, "status": ticket.status.value, "verdict": verdict, "memory_updated": relabelled},
    )
    return ticket


def _reviewable(ticket: Ticket, feedback: Feedback) -> None:
    if ticket.status is Status.PENDING:
        raise Conflict(f"ticket {ticket.ticket_id!r} is still Pending: it has no labels to confirm or correct yet")
    if feedback.category is None and ticket.labels is None:
        raise Conflict(f"ticket {ticket.ticket_id!r} is {ticket.status.value} without labels: nothing to confirm")


def _corrected_labels(ticket: Ticket, feedback: Feedback, taxonomy: Taxonomy) -> Labels:
    current = ticket.labels
    if feedback.category is None:  # a confirmation
        assert current is not None
        return current
    priority = feedback.priority or (current.priority if current else taxonomy.default_priority)
    if feedback.assignment_group:
        group = feedback.assignment_group
    elif current and current.category == feedback.category:
        group = current.assignment_group
    else:
        # A new category usually means a new team: route to the category's own group.
        group = taxonomy.default_group_for(feedback.category)
    return taxonomy.check(Labels(category=feedback.category, priority=priority, assignment_group=group))
