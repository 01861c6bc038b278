"""A reviewer's correction: the ticket's labels become final and the memory learns at once."""

from __future__ import annotations

import dataclasses
import logging

from .. import domain
from ..domain import Labels, LabelSource, MessageKind, Taxonomy, Ticket
from ..errors import NotFound, TransientError, UnknownTicket
from ..ports import Clock, Memory, Publisher, Tickets
from .writeback import WritebackQueue, resend_writeback, with_writeback

log = logging.getLogger(__name__)


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
    store: Tickets,
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

    relabelled = False
    try:
        relabelled = memory.relabel(ticket_id, tenant=ticket.tenant, labels=labels, label_source=LabelSource.HUMAN)
    except TransientError:
        log.warning("memory unavailable; the worker will apply the correction", extra={"ticket_id": ticket_id})
    if not relabelled:
        publisher.publish(ticket_id, MessageKind.REMEMBER)
    resend_writeback(ticket, writeback)
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
