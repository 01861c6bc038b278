"""Tickets: what a caller submits, what the engine records, and the rules for moving a
ticket from one status to the next.

Everything here is a frozen value or a pure function. This module must never do
I/O or import Google, Chroma or torch: the store, the worker and the tests all
reason with the same rules, and a rule lives in exactly one place.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import TicketBusy
from .taxonomy import Labels

if TYPE_CHECKING:
    from .writeback import Writeback

# Size limits of what a caller may submit; webhook parsers cut to them rather than refuse.
TITLE_MAX_CHARS = 300
DESCRIPTION_MAX_CHARS = 32_000


class Status(enum.StrEnum):
    PENDING = "Pending"
    CLASSIFIED_BY_AI = "Classified_By_AI"
    CLASSIFIED_BY_CACHE = "Classified_By_Cache"
    CORRECTED_BY_HUMAN = "Corrected_By_Human"
    VERIFIED_BY_HUMAN = "Verified_By_Human"  # a reviewer confirmed the labels as they were
    FAILED = "Failed"


# A human's word: final, outranks everyone, never overwritten by a late answer.
REVIEWED = frozenset({Status.CORRECTED_BY_HUMAN, Status.VERIFIED_BY_HUMAN})


# The embedded classifier's name on the tickets it answers: it runs on the worker, it is not an LLM call.
LOCAL_CLASSIFIER = "local-embedding"


class AnswerPath(enum.StrEnum):
    """Which way the worker answered a ticket."""

    MEMORY = "memory"
    CLASSIFIER = "classifier"


def model_text(title: str, description: str) -> str:
    """The text the embedder, the classifier and the memory all see: one definition."""
    return "\n".join(part for part in (title.strip(), description.strip()) if part)


# --------------------------------------------------------------------------- what arrives


@dataclasses.dataclass(frozen=True)
class Submission:
    """A ticket as a caller or a source's webhook hands it in."""

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


def ticket_id_for(natural_key: str) -> str:
    return hashlib.sha256(natural_key.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- what is recorded


@dataclasses.dataclass(frozen=True)
class Classification:
    labels: Labels
    confidence: float
    rationale: str
    path: AnswerPath
    classifier: str | None = None
    matched_ticket_id: str | None = None
    similarity: float | None = None
    example_ticket_ids: tuple[str, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    classified_at: datetime | None = None
    needs_review: bool = False  # answered in a degraded mode: a human should look
    degraded: tuple[str, ...] = ()  # what did not work, and what was done instead
    remembered: bool = True  # False: the memory was unavailable and does not hold this ticket yet
    # A calibrated memory answer: each label's probability of being what the classifier of record gives.
    probabilities: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Correction:
    """A reviewer's verdict: new labels, or (``confirmed``) the labels as they were."""

    labels: Labels
    previous: Labels | None
    reviewer: str | None
    comment: str | None
    corrected_at: datetime
    confirmed: bool = False


@dataclasses.dataclass(frozen=True)
class Audit:
    """The classifier of record, asked in the background about a memory answer; never changes it."""

    labels: Labels
    classifier: str
    agreed: Mapping[str, bool]  # per label: did it give the memory's value?
    audited_at: datetime


@dataclasses.dataclass(frozen=True)
class Ticket:
    ticket_id: str
    tenant: str
    title: str
    description: str
    created_at: datetime
    updated_at: datetime
    status: Status = Status.PENDING
    source: str | None = None
    external_id: str | None = None
    reporter: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""
    published: bool = False
    attempts: int = 0
    lease_expires_at: datetime | None = None
    classification: Classification | None = None
    corrections: tuple[Correction, ...] = ()
    last_error: str | None = None
    revision: int = 0
    republished: int = 0  # times the reconciler re-sent a stuck ticket
    writeback: Writeback | None = None
    audit: Audit | None = None

    @property
    def labels(self) -> Labels | None:
        """The labels in force: the last human correction, else the classification's."""
        if self.corrections:
            return self.corrections[-1].labels
        return self.classification.labels if self.classification else None

    @property
    def text(self) -> str:
        return model_text(self.title, self.description)


def new_ticket(
    submission: Submission, *, ticket_id: str, now: datetime, redact: Callable[[str], str] | None = None
) -> Ticket:
    """The Pending ticket a submission becomes (its text redacted by ``redact`` if given)."""
    clean = redact or (lambda text: text)
    return Ticket(
        ticket_id=ticket_id,
        tenant=submission.tenant,
        title=clean(submission.title),
        description=clean(submission.description),
        source=submission.source,
        external_id=submission.external_id,
        reporter=submission.reporter,
        metadata=dict(submission.metadata),
        # The fingerprint is of what the caller sent, before redaction.
        fingerprint=submission.fingerprint(),
        created_at=now,
        updated_at=now,
    )


# --------------------------------------------------------------------------- transitions


class Unchanged(Exception):
    """A transition that must not happen; the store writes nothing."""

    def __init__(self, ticket: Ticket, reason: str):
        super().__init__(reason)
        self.ticket = ticket
        self.reason = reason


FINAL_STATUSES = frozenset({Status.CLASSIFIED_BY_AI, Status.CLASSIFIED_BY_CACHE, Status.FAILED, *REVIEWED})


def _pending(ticket: Ticket) -> None:
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")


def _failed(ticket: Ticket, reason: str, now: datetime) -> Ticket:
    if ticket.last_error:
        reason += f"; last error: {ticket.last_error}"
    return dataclasses.replace(ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now)


def claim(ticket: Ticket, *, now: datetime, lease_seconds: float, max_attempts: int) -> Ticket:
    """Take a Pending ticket for one processing attempt.

    A ticket that already has its answer is left alone (a redelivery does nothing);
    one that another delivery is working on raises TicketBusy so Pub/Sub tries later;
    one that has used up its attempts becomes Failed with its last error.
    """
    if ticket.status in FINAL_STATUSES:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    if ticket.lease_expires_at is not None and ticket.lease_expires_at > now:
        raise TicketBusy(f"ticket {ticket.ticket_id} is being processed by another delivery")
    if ticket.attempts >= max_attempts:
        return _failed(ticket, f"gave up after {ticket.attempts} attempts", now)
    return dataclasses.replace(
        ticket,
        attempts=ticket.attempts + 1,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        updated_at=now,
    )


def complete(ticket: Ticket, classification: Classification, *, now: datetime) -> Ticket:
    """Record the worker's answer, unless someone got there first (a human, or another delivery)."""
    _pending(ticket)
    status = Status.CLASSIFIED_BY_CACHE if classification.path is AnswerPath.MEMORY else Status.CLASSIFIED_BY_AI
    return dataclasses.replace(
        ticket,
        status=status,
        classification=dataclasses.replace(classification, classified_at=now),
        lease_expires_at=None,
        last_error=None,
        updated_at=now,
    )


def fail(ticket: Ticket, reason: str, *, now: datetime) -> Ticket:
    _pending(ticket)
    return dataclasses.replace(ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now)


def note_error(ticket: Ticket, error: str, *, now: datetime) -> Ticket:
    """Remember why an attempt failed and free the lease so the next delivery may try at once."""
    _pending(ticket)
    return dataclasses.replace(ticket, last_error=error, lease_expires_at=None, updated_at=now)


def wait_for_configuration(ticket: Ticket, error: str, *, now: datetime) -> Ticket:
    """The classifier refuses its credentials and nothing may answer in its place: the ticket
    waits, Pending, for the operator's fix. This delivery's attempt is given back and the
    reconciler's re-sends start over, so however long the fix takes the ticket is never
    Failed for it; each reconcile sends it again until it is answered."""
    _pending(ticket)
    return dataclasses.replace(
        ticket,
        attempts=max(ticket.attempts - 1, 0),
        republished=0,
        last_error=f"waiting for the classifier's configuration: {error}"[:1000],
        lease_expires_at=None,
        updated_at=now,
    )


def correct(
    ticket: Ticket,
    labels: Labels,
    *,
    reviewer: str | None,
    comment: str | None,
    now: datetime,
) -> Ticket:
    """A human's word is final, and the history is kept. Labels equal to those in force are a
    confirmation (Verified_By_Human), not a correction. A Pending ticket has nothing to review."""
    if ticket.status is Status.PENDING:
        raise Unchanged(ticket, "the ticket has no labels yet: it is still Pending")
    confirmed = labels == ticket.labels and ticket.status is not Status.CORRECTED_BY_HUMAN
    correction = Correction(
        labels=labels, previous=ticket.labels, reviewer=reviewer, comment=comment, corrected_at=now, confirmed=confirmed
    )
    return dataclasses.replace(
        ticket,
        status=Status.VERIFIED_BY_HUMAN if confirmed else Status.CORRECTED_BY_HUMAN,
        corrections=(*ticket.corrections, correction),
        lease_expires_at=None,
        updated_at=now,
    )


def record_audit(ticket: Ticket, audit: Audit, *, now: datetime) -> Ticket:
    """The classifier of record's view of a memory answer, kept beside it (once)."""
    if ticket.audit is not None:
        raise Unchanged(ticket, "already audited")
    return dataclasses.replace(ticket, audit=audit, updated_at=now)


def mark_remembered(ticket: Ticket, *, now: datetime) -> Ticket:
    """The memory holds the ticket now (it was down when the ticket was classified)."""
    if ticket.classification is None or ticket.classification.remembered:
        raise Unchanged(ticket, "nothing to mark")
    return dataclasses.replace(
        ticket, classification=dataclasses.replace(ticket.classification, remembered=True), updated_at=now
    )


def republish(ticket: Ticket, *, now: datetime, max_republish: int) -> Ticket:
    """A Pending ticket nobody finished: send it again, but not forever."""
    _pending(ticket)
    if ticket.republished >= max_republish:
        return _failed(ticket, f"stuck: re-sent {ticket.republished} times without an answer", now)
    return dataclasses.replace(ticket, republished=ticket.republished + 1, lease_expires_at=None, updated_at=now)


def dead_letter(ticket: Ticket, *, deliveries: int, now: datetime) -> Ticket:
    """Pub/Sub gave up on the ticket's message after ``deliveries`` attempts."""
    _pending(ticket)
    return _failed(ticket, f"dead-lettered after {deliveries} deliveries", now)


def replay(ticket: Ticket, *, now: datetime) -> Ticket:
    """An operator sends a Failed ticket through the pipeline again, with fresh attempts."""
    if ticket.status is not Status.FAILED:
        raise Unchanged(ticket, f"only Failed tickets are replayed; this one is {ticket.status.value}")
    return dataclasses.replace(
        ticket,
        status=Status.PENDING,
        attempts=0,
        republished=0,
        lease_expires_at=None,
        published=False,
        updated_at=now,
    )


def retriage(ticket: Ticket, *, title: str, description: str, fingerprint: str, now: datetime) -> Ticket:
    """The source changed the ticket's text: classify it again, unless a human has decided."""
    if (title, description) == (ticket.title, ticket.description):
        raise Unchanged(ticket, "the text is unchanged")
    updated = dataclasses.replace(
        ticket,
        title=title,
        description=description,
        fingerprint=fingerprint,
        revision=ticket.revision + 1,
        updated_at=now,
    )
    if ticket.status in REVIEWED:
        return updated  # a human's labels stand; the text is kept current
    return dataclasses.replace(
        updated,
        status=Status.PENDING,
        classification=None,
        attempts=0,
        lease_expires_at=None,
        last_error=None,
        published=False,
    )
