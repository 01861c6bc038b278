"""Work that stopped, restarted boundedly; messages Pub/Sub gave up on; Failed tickets replayed.

``reconcile`` runs three ways with the same bound collaborators: the worker's scheduled
``reconcile`` message (Cloud Scheduler), ``POST /admin/reconcile`` and ``triage reconcile``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from .. import domain
from ..domain import MessageKind, Status
from ..errors import UnknownTicket
from ..ports import Clock, Publisher, Tickets, WorkQueries
from .outcome import Action, Outcome
from .writeback import WritebackQueue

log = logging.getLogger(__name__)


class Store(Tickets, WorkQueries, Protocol):
    """What recovery needs of the store: tickets, and queries for stopped work."""


@dataclasses.dataclass(frozen=True)
class RecoveryOptions:
    older_than: timedelta = timedelta(minutes=5)  # RECONCILE_AFTER_SECONDS
    limit: int = 500  # RECONCILE_LIMIT: tickets per kind of stopped work, per run
    max_republish: int = 3  # RECONCILE_MAX_REPUBLISH


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
    older_than: timedelta | None = None,
    limit: int | None = None,
    *,
    store: Store,
    publisher: Publisher,
    clock: Clock,
    recovery: RecoveryOptions = RecoveryOptions(),
    writeback: WritebackQueue | None = None,
) -> ReconcileReport:
    """Find work that stopped and restart it, boundedly (``older_than`` and ``limit`` default
    to ``recovery``'s).

    * Pending tickets untouched for ``older_than`` are published again, at most
      ``max_republish`` times each; then they become Failed with the reason. This is also
      what publishes a ticket whose API request died between storing it and its publish
      (ingest records no "published" flag: that write would cost every request a round trip).
    * Write-backs pending that long are queued again (the write-back gives up by itself
      after its own attempts).
    * Tickets classified while the memory was down are put into the memory.
    """
    report = ReconcileReport()
    before = clock() - (older_than or recovery.older_than)
    limit = limit or recovery.limit
    for ticket in store.find(status=Status.PENDING, updated_before=before, limit=limit):
        try:
            updated = store.update(
                ticket.ticket_id,
                lambda t: domain.ticket.republish(t, now=clock(), max_republish=recovery.max_republish),
            )
        except domain.Unchanged:
            continue
        if updated.status is Status.FAILED:
            report.failed.append(ticket.ticket_id)
            log.error("stuck ticket failed", extra={"ticket_id": ticket.ticket_id, "reason": updated.last_error})
            continue
        publisher.publish(ticket.ticket_id, MessageKind.CLASSIFY)
        report.republished.append(ticket.ticket_id)
    if writeback is not None:
        for ticket in store.find(writeback_status=domain.WritebackStatus.PENDING, updated_before=before, limit=limit):
            if writeback.wants(ticket):
                writeback.publisher.publish(ticket.ticket_id, MessageKind.WRITE_BACK)
                report.writebacks.append(ticket.ticket_id)
    for ticket in store.find(remembered=False, limit=limit):
        publisher.publish(ticket.ticket_id, MessageKind.REMEMBER)
        report.remembered.append(ticket.ticket_id)
    log.info("reconciled", extra={k: len(v) for k, v in dataclasses.asdict(report).items()})
    return report


def scheduled_reconcile(
    ticket_id: str = "",
    *,
    store: Store,
    publisher: Publisher,
    clock: Clock,
    recovery: RecoveryOptions = RecoveryOptions(),
    writeback: WritebackQueue | None = None,
) -> Outcome:
    """The ``reconcile`` message Cloud Scheduler publishes (it carries no ticket)."""
    report = reconcile(store=store, publisher=publisher, clock=clock, recovery=recovery, writeback=writeback)
    return Outcome(Action.RECONCILED, ticket_id, detail=json.dumps(report.as_dict()["ticket_ids"]))


def replay_failed(
    ticket_ids: Sequence[str] | None,
    limit: int = 100,
    *,
    store: Store,
    publisher: Publisher,
    clock: Clock,
) -> list[str]:
    """Send Failed tickets through the pipeline again: the given ones, or the oldest ``limit``."""
    if ticket_ids is None:
        ticket_ids = [t.ticket_id for t in store.find(status=Status.FAILED, limit=limit)]
    replayed = []
    for ticket_id in ticket_ids:
        try:
            store.update(ticket_id, lambda t: domain.ticket.replay(t, now=clock()))
        except (domain.Unchanged, UnknownTicket):
            continue
        publisher.publish(ticket_id, MessageKind.CLASSIFY)
        replayed.append(ticket_id)
    log.info("failed tickets replayed", extra={"count": len(replayed)})
    return replayed


def dead_letter(ticket_id: str, kind: MessageKind, deliveries: int, *, store: Tickets, clock: Clock) -> Outcome:
    """A message Pub/Sub gave up on (dead-letter topic): the ticket or its write-back fails, with why."""
    try:
        if kind == MessageKind.WRITE_BACK:
            ticket = store.update(
                ticket_id,
                lambda t: domain.writeback.fail_writeback(
                    t, f"dead-lettered after {deliveries} deliveries", now=clock()
                ),
            )
        elif kind == MessageKind.CLASSIFY:
            ticket = store.update(ticket_id, lambda t: domain.ticket.dead_letter(t, deliveries=deliveries, now=clock()))
        else:
            return Outcome(Action.SKIPPED, ticket_id, None, f"a dead-lettered {kind} message needs no action")
    except domain.Unchanged as unchanged:
        return Outcome(Action.SKIPPED, ticket_id, unchanged.ticket.status, unchanged.reason)
    log.error("message dead-lettered", extra={"ticket_id": ticket_id, "kind": kind, "deliveries": deliveries})
    return Outcome(Action.DEAD_LETTERED, ticket_id, ticket.status, f"after {deliveries} deliveries")
