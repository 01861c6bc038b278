"""The engine's vocabulary: tickets, labels, the taxonomy, and the rules for moving a
ticket from one status to the next.

Everything here is a frozen value or a pure function. This module must never do
I/O or import Google, Chroma or torch: the store, the worker and the tests all
reason with the same rules, and a rule lives in exactly one place.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidLabels, TicketBusy


class Status(enum.StrEnum):
    PENDING = "Pending"
    CLASSIFIED_BY_AI = "Classified_By_AI"
    CLASSIFIED_BY_CACHE = "Classified_By_Cache"
    CORRECTED_BY_HUMAN = "Corrected_By_Human"
    FAILED = "Failed"


class WritebackStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DRY_RUN = "dry_run"
    FAILED = "failed"


class Path(enum.StrEnum):
    """Which way the worker answered a ticket."""

    MEMORY = "memory"
    CLASSIFIER = "classifier"


class LabelSource(enum.StrEnum):
    """Who put a label on a memory entry; a human outranks everyone."""

    HUMAN = "human"
    MODEL = "model"
    MEMORY = "memory"
    IMPORTED = "imported"


# --------------------------------------------------------------------------- taxonomy


@dataclasses.dataclass(frozen=True)
class Category:
    name: str
    description: str
    examples: tuple[str, ...] = ()
    assignment_group: str | None = None


@dataclasses.dataclass(frozen=True)
class Priority:
    name: str
    description: str


@dataclasses.dataclass(frozen=True)
class AssignmentGroup:
    name: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Labels:
    category: str
    priority: str
    assignment_group: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    priorities: tuple[Priority, ...]
    assignment_groups: tuple[AssignmentGroup, ...]
    default_priority: str

    def __post_init__(self) -> None:
        for kind, names in (
            ("category", self.category_names),
            ("priority", self.priority_names),
            ("assignment group", self.assignment_group_names),
        ):
            if not names:
                raise ValueError(f"the taxonomy needs at least one {kind}")
            if len(set(names)) != len(names):
                raise ValueError(f"the taxonomy repeats a {kind} name: {list(names)}")
        if self.default_priority not in self.priority_names:
            raise ValueError(f"default_priority {self.default_priority!r} is not a priority")
        for category in self.categories:
            if category.assignment_group and category.assignment_group not in self.assignment_group_names:
                raise ValueError(
                    f"category {category.name!r} routes to unknown assignment group {category.assignment_group!r}"
                )

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def priority_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.priorities)

    @property
    def assignment_group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.assignment_groups)

    def category(self, name: str) -> Category:
        for category in self.categories:
            if category.name == name:
                return category
        raise InvalidLabels(f"category {name!r} is not in the taxonomy", details={"allowed": list(self.category_names)})

    def default_group_for(self, category: str) -> str:
        return self.category(category).assignment_group or self.assignment_group_names[0]

    def check(self, labels: Labels) -> Labels:
        """Return ``labels`` if every one of them is in the taxonomy, else raise InvalidLabels."""
        problems = {}
        if labels.category not in self.category_names:
            problems["category"] = {"got": labels.category, "allowed": list(self.category_names)}
        if labels.priority not in self.priority_names:
            problems["priority"] = {"got": labels.priority, "allowed": list(self.priority_names)}
        if labels.assignment_group not in self.assignment_group_names:
            problems["assignment_group"] = {
                "got": labels.assignment_group,
                "allowed": list(self.assignment_group_names),
            }
        if problems:
            raise InvalidLabels("labels outside the taxonomy: " + ", ".join(sorted(problems)), details=problems)
        return labels

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        try:
            groups = tuple(
                AssignmentGroup(name=g["name"], description=g.get("description", "")) for g in data["assignment_groups"]
            )
            categories = tuple(
                Category(
                    name=c["name"],
                    description=c["description"],
                    examples=tuple(c.get("examples", ())),
                    assignment_group=c.get("assignment_group"),
                )
                for c in data["categories"]
            )
            priorities = tuple(Priority(name=p["name"], description=p["description"]) for p in data["priorities"])
            default_priority = data.get("default_priority") or priorities[len(priorities) // 2].name
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"malformed taxonomy: missing or wrong field {error}") from error
        return cls(categories, priorities, groups, default_priority)


# --------------------------------------------------------------------------- tickets


@dataclasses.dataclass(frozen=True)
class Classification:
    labels: Labels
    confidence: float
    rationale: str
    path: Path
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


@dataclasses.dataclass(frozen=True)
class Correction:
    labels: Labels
    previous: Labels | None
    reviewer: str | None
    comment: str | None
    corrected_at: datetime


@dataclasses.dataclass(frozen=True)
class Writeback:
    """Writing the labels back to the ticket's source (Jira, ServiceNow), asynchronously."""

    status: WritebackStatus
    requested_at: datetime
    attempts: int = 0
    lease_expires_at: datetime | None = None
    started_for: datetime | None = None  # the request the running attempt serves
    finished_at: datetime | None = None
    # What was sent (or, in a dry run, would have been): method, url, body, response status.
    calls: tuple[Mapping[str, Any], ...] = ()
    # Values this engine set in the source; only these may be overwritten later.
    written: Mapping[str, str] = dataclasses.field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    last_error: str | None = None


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

    @property
    def labels(self) -> Labels | None:
        """The labels in force: the last human correction, else the classification's."""
        if self.corrections:
            return self.corrections[-1].labels
        return self.classification.labels if self.classification else None

    def model_text(self, max_chars: int) -> str:
        """The text the embedder, the classifier and the memory all see: one definition."""
        text = self.title.strip()
        description = self.description.strip()
        if description:
            text = f"{text}\n{description}"
        return text[:max_chars]


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """A memory entry found near a ticket."""

    ticket_id: str
    similarity: float
    labels: Labels
    label_source: LabelSource
    text: str = ""
    source_ticket_id: str | None = None


@dataclasses.dataclass(frozen=True)
class MemoryEntry:
    ticket_id: str
    tenant: str
    embedding: Sequence[float]
    text: str
    labels: Labels
    label_source: LabelSource
    source_ticket_id: str | None = None


# --------------------------------------------------------------------------- transitions


class Unchanged(Exception):
    """A transition that must not happen; the store writes nothing."""

    def __init__(self, ticket: Ticket, reason: str):
        super().__init__(reason)
        self.ticket = ticket
        self.reason = reason


FINAL_STATUSES = frozenset(
    {Status.CLASSIFIED_BY_AI, Status.CLASSIFIED_BY_CACHE, Status.CORRECTED_BY_HUMAN, Status.FAILED}
)


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
        reason = f"gave up after {ticket.attempts} attempts"
        if ticket.last_error:
            reason += f"; last error: {ticket.last_error}"
        return dataclasses.replace(
            ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now
        )
    return dataclasses.replace(
        ticket,
        attempts=ticket.attempts + 1,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        updated_at=now,
    )


def complete(ticket: Ticket, classification: Classification, *, now: datetime) -> Ticket:
    """Record the worker's answer, unless someone got there first (a human, or another delivery)."""
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    status = Status.CLASSIFIED_BY_CACHE if classification.path is Path.MEMORY else Status.CLASSIFIED_BY_AI
    return dataclasses.replace(
        ticket,
        status=status,
        classification=dataclasses.replace(classification, classified_at=now),
        lease_expires_at=None,
        last_error=None,
        updated_at=now,
    )


def fail(ticket: Ticket, reason: str, *, now: datetime) -> Ticket:
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    return dataclasses.replace(ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now)


def note_error(ticket: Ticket, error: str, *, now: datetime) -> Ticket:
    """Remember why an attempt failed and free the lease so the next delivery may try at once."""
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    return dataclasses.replace(ticket, last_error=error, lease_expires_at=None, updated_at=now)


def correct(
    ticket: Ticket,
    labels: Labels,
    *,
    reviewer: str | None,
    comment: str | None,
    now: datetime,
) -> Ticket:
    """A human's word is final: any ticket can be corrected, and the history is kept."""
    correction = Correction(labels=labels, previous=ticket.labels, reviewer=reviewer, comment=comment, corrected_at=now)
    return dataclasses.replace(
        ticket,
        status=Status.CORRECTED_BY_HUMAN,
        corrections=(*ticket.corrections, correction),
        lease_expires_at=None,
        updated_at=now,
    )


def mark_remembered(ticket: Ticket, *, now: datetime) -> Ticket:
    """The memory holds the ticket now (it was down when the ticket was classified)."""
    if ticket.classification is None or ticket.classification.remembered:
        raise Unchanged(ticket, "nothing to mark")
    return dataclasses.replace(
        ticket, classification=dataclasses.replace(ticket.classification, remembered=True), updated_at=now
    )


def republish(ticket: Ticket, *, now: datetime, max_republish: int) -> Ticket:
    """A Pending ticket nobody finished: send it again, but not forever."""
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    if ticket.republished >= max_republish:
        reason = f"stuck: re-sent {ticket.republished} times without an answer"
        if ticket.last_error:
            reason += f"; last error: {ticket.last_error}"
        return dataclasses.replace(
            ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now
        )
    return dataclasses.replace(ticket, republished=ticket.republished + 1, lease_expires_at=None, updated_at=now)


def dead_letter(ticket: Ticket, *, deliveries: int, now: datetime) -> Ticket:
    """Pub/Sub gave up on the ticket's message after ``deliveries`` attempts."""
    if ticket.status is not Status.PENDING:
        raise Unchanged(ticket, f"already {ticket.status.value}")
    reason = f"dead-lettered after {deliveries} deliveries"
    if ticket.last_error:
        reason += f"; last error: {ticket.last_error}"
    return dataclasses.replace(ticket, status=Status.FAILED, last_error=reason, lease_expires_at=None, updated_at=now)


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
    if ticket.status is Status.CORRECTED_BY_HUMAN:
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


def request_writeback(ticket: Ticket, *, now: datetime) -> Ticket:
    """Ask for the labels in force to be written to the source (again, after a correction)."""
    previous = ticket.writeback
    if previous is not None and previous.status is WritebackStatus.PENDING:
        raise Unchanged(ticket, "a write-back is already pending")
    written = previous.written if previous else {}
    running = previous is not None and previous.status is WritebackStatus.RUNNING
    # A running attempt is left to finish; it sees the newer request and leaves the write-back pending.
    status = WritebackStatus.RUNNING if running else WritebackStatus.PENDING
    base = previous or Writeback(status=status, requested_at=now)
    return dataclasses.replace(
        ticket, writeback=dataclasses.replace(base, status=status, requested_at=now, written=written), updated_at=now
    )


def begin_writeback(ticket: Ticket, *, now: datetime, lease_seconds: float, max_attempts: int = 10) -> Ticket:
    state = ticket.writeback
    if state is None or state.status not in (WritebackStatus.PENDING, WritebackStatus.RUNNING):
        raise Unchanged(ticket, f"no write-back pending ({state.status.value if state else 'none requested'})")
    if state.status is WritebackStatus.RUNNING and state.lease_expires_at and state.lease_expires_at > now:
        raise TicketBusy(f"ticket {ticket.ticket_id} is being written back by another delivery")
    if state.attempts >= max_attempts:
        failed = dataclasses.replace(
            state,
            status=WritebackStatus.FAILED,
            lease_expires_at=None,
            finished_at=now,
            last_error=f"gave up after {state.attempts} attempts; last error: {state.last_error}",
        )
        return dataclasses.replace(ticket, writeback=failed, updated_at=now)
    return dataclasses.replace(
        ticket,
        writeback=dataclasses.replace(
            state,
            status=WritebackStatus.RUNNING,
            attempts=state.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_for=state.requested_at,
        ),
        updated_at=now,
    )


def finish_writeback(
    ticket: Ticket,
    *,
    status: WritebackStatus,
    calls: tuple[Mapping[str, Any], ...],
    written: Mapping[str, str],
    skipped: tuple[str, ...],
    error: str | None,
    started_for: datetime | None,
    now: datetime,
) -> Ticket:
    state = ticket.writeback
    if state is None:
        raise Unchanged(ticket, "no write-back requested")
    # A correction asked for another write-back while this one ran: that one is still due.
    newer_request = started_for is not None and state.requested_at != started_for
    return dataclasses.replace(
        ticket,
        writeback=dataclasses.replace(
            state,
            status=WritebackStatus.PENDING if newer_request else status,
            lease_expires_at=None,
            finished_at=now,
            calls=calls,
            written={**state.written, **written},
            skipped=skipped,
            last_error=error,
        ),
        updated_at=now,
    )


# --------------------------------------------------------------------------- records


def _labels_to_record(labels: Labels | None) -> dict[str, str] | None:
    return labels.as_dict() if labels else None


def _labels_from_record(record: Mapping[str, Any] | None) -> Labels | None:
    return Labels(**record) if record else None


def ticket_to_record(ticket: Ticket) -> dict[str, Any]:
    """A plain dict of JSON types and datetimes: what Firestore stores and the API shows."""
    record = dataclasses.asdict(ticket)
    record["status"] = ticket.status.value
    record["metadata"] = dict(ticket.metadata)
    if ticket.classification:
        record["classification"]["path"] = ticket.classification.path.value
        record["classification"]["example_ticket_ids"] = list(ticket.classification.example_ticket_ids)
        record["classification"]["degraded"] = list(ticket.classification.degraded)
    record["corrections"] = [
        {**dataclasses.asdict(c), "previous": _labels_to_record(c.previous)} for c in ticket.corrections
    ]
    if ticket.writeback:
        record["writeback"] = {
            **dataclasses.asdict(ticket.writeback),
            "status": ticket.writeback.status.value,
            "calls": [dict(c) for c in ticket.writeback.calls],
            "written": dict(ticket.writeback.written),
            "skipped": list(ticket.writeback.skipped),
        }
    return record


def ticket_from_record(record: Mapping[str, Any]) -> Ticket:
    fields = {f.name for f in dataclasses.fields(Ticket)}
    values = {k: v for k, v in record.items() if k in fields}
    values["status"] = Status(record["status"])
    values["metadata"] = dict(record.get("metadata") or {})
    classification = record.get("classification")
    if classification:
        values["classification"] = Classification(
            **{
                **classification,
                "labels": _labels_from_record(classification["labels"]),
                "path": Path(classification["path"]),
                "example_ticket_ids": tuple(classification.get("example_ticket_ids") or ()),
                "degraded": tuple(classification.get("degraded") or ()),
            }
        )
    values["corrections"] = tuple(
        Correction(
            **{
                **c,
                "labels": _labels_from_record(c["labels"]),
                "previous": _labels_from_record(c.get("previous")),
            }
        )
        for c in record.get("corrections") or ()
    )
    writeback = record.get("writeback")
    if writeback:
        values["writeback"] = Writeback(
            **{
                **writeback,
                "status": WritebackStatus(writeback["status"]),
                "calls": tuple(writeback.get("calls") or ()),
                "written": dict(writeback.get("written") or {}),
                "skipped": tuple(writeback.get("skipped") or ()),
            }
        )
    return Ticket(**values)
