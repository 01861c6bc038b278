"""Writing the labels in force back to the ticket's source (Jira, ServiceNow).

A classification or a correction asks for it in the same write as the labels
(``with_writeback``), then publishes a ``write_back`` message (``resend_writeback``, again
on every redelivery: the first delivery may have died in between). The worker's
``write_back`` plans the calls from the source's current values and records what it sent;
the source's refusal is recorded on the ticket and never touches the classification.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from .. import domain
from ..domain import MessageKind, Ticket, WritebackStatus
from ..errors import WritebackFailed
from ..ports import Clock, Publisher, Tickets, WritebackTarget
from .outcome import Action, Outcome

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WritebackQueue:
    """Which sources get labels written back, and the topic that carries that work."""

    sources: frozenset[str]
    publisher: Publisher

    def wants(self, ticket: Ticket) -> bool:
        return ticket.source in self.sources and ticket.labels is not None


@dataclasses.dataclass(frozen=True)
class DeliveryOptions:
    lease_seconds: float = 120.0
    # Deliveries of one write-back message before it fails (each makes up to
    # WRITEBACK_HTTP_ATTEMPTS HTTP attempts per call, inside the source client).
    max_deliveries: int = 10


def with_writeback(ticket: Ticket, writeback: WritebackQueue | None, clock: Clock) -> Ticket:
    """Ask, in the same write as the new labels, for them to be written to the source."""
    if writeback is None or not writeback.wants(ticket):
        return ticket
    try:
        return domain.writeback.request_writeback(ticket, now=clock())
    except domain.Unchanged:
        return ticket


def resend_writeback(ticket: Ticket, writeback: WritebackQueue | None) -> None:
    """Queue a requested write-back. Also on a redelivery: the first delivery may have died
    between recording the labels and publishing."""
    if writeback is None or ticket.writeback is None or not writeback.wants(ticket):
        return
    if ticket.writeback.status is WritebackStatus.PENDING:
        writeback.publisher.publish(ticket.ticket_id, MessageKind.WRITE_BACK)


def write_back(
    ticket_id: str,
    *,
    store: Tickets,
    targets: Mapping[str, WritebackTarget],
    clock: Clock,
    delivery: DeliveryOptions = DeliveryOptions(),
) -> Outcome:
    """Write the labels in force to the ticket's source, or record why not.

    The source's refusal, or its failure after the client's retries, is recorded on the
    ticket and the message acknowledged: the classification itself is never touched.
    """
    try:
        ticket = store.update(
            ticket_id,
            lambda t: domain.writeback.begin_writeback(
                t, now=clock(), lease_seconds=delivery.lease_seconds, max_deliveries=delivery.max_deliveries
            ),
        )
    except domain.Unchanged as unchanged:
        return Outcome(Action.SKIPPED, ticket_id, unchanged.ticket.status, unchanged.reason)
    state = ticket.writeback
    assert state is not None
    if state.status is WritebackStatus.FAILED:
        log.error("write-back gave up", extra={"ticket_id": ticket_id, "error": state.last_error})
        return Outcome(Action.WRITTEN_BACK, ticket_id, ticket.status, state.status.value)
    target = targets.get(ticket.source or "")
    calls: tuple[Mapping[str, Any], ...] = ()
    written: Mapping[str, str] = {}
    skipped: tuple[str, ...] = ()
    error: str | None = None
    if target is None:
        status, error = WritebackStatus.FAILED, f"write-back is not enabled for source {ticket.source!r}"
    else:
        sent: list[Mapping[str, Any]] = []
        try:
            plan = target.plan(ticket, target.client.read(ticket))
            skipped = plan.skipped
            if target.dry_run:
                status = WritebackStatus.DRY_RUN
                sent = [call.record(target.client.base_url, None) for call in plan.calls]
            else:
                for call in plan.calls:
                    sent.append(call.record(target.client.base_url, target.client.send(call)))
                status = WritebackStatus.DONE
            written = plan.written
        except WritebackFailed as failure:
            status, error = WritebackStatus.FAILED, str(failure)
        calls = tuple(sent)
    final = store.update(
        ticket_id,
        lambda t: domain.writeback.finish_writeback(
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
        logging.ERROR if status is WritebackStatus.FAILED else logging.INFO,
        "write-back finished",
        extra={"ticket_id": ticket_id, "source": ticket.source, "writeback": status.value, "error": error},
    )
    return Outcome(Action.WRITTEN_BACK, ticket_id, final.status, status.value)
