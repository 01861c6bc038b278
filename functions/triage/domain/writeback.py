"""Writing a ticket's labels back to its source (Jira, ServiceNow): the state a ticket
keeps about it, its transitions, and what a plan of calls consists of.

Pure values and rules shared by every source: which fields the engine may overwrite,
and what it says when its confidence is too low to label. The per-source planners
live in ``triage.sources``, the HTTP clients in ``triage.adapters``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..errors import TicketBusy
from .ticket import REVIEWED, AnswerPath, Ticket, Unchanged


class WritebackStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DRY_RUN = "dry_run"
    FAILED = "failed"


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


# --------------------------------------------------------------------------- transitions


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


def begin_writeback(ticket: Ticket, *, now: datetime, lease_seconds: float, max_deliveries: int = 10) -> Ticket:
    """Take a pending write-back for one delivery; after ``max_deliveries`` it fails instead."""
    state = ticket.writeback
    if state is None or state.status not in (WritebackStatus.PENDING, WritebackStatus.RUNNING):
        raise Unchanged(ticket, f"no write-back pending ({state.status.value if state else 'none requested'})")
    if state.status is WritebackStatus.RUNNING and state.lease_expires_at and state.lease_expires_at > now:
        raise TicketBusy(f"ticket {ticket.ticket_id} is being written back by another delivery")
    if state.attempts >= max_deliveries:
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


def fail_writeback(ticket: Ticket, error: str, *, now: datetime) -> Ticket:
    """The write-back's messages were dead-lettered: it fails, keeping what it had sent."""
    calls = ticket.writeback.calls if ticket.writeback else ()
    return finish_writeback(
        ticket,
        status=WritebackStatus.FAILED,
        calls=calls,
        written={},
        skipped=(),
        error=error,
        started_for=None,
        now=now,
    )


# --------------------------------------------------------------------------- plans


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: Mapping[str, str]
    body: Mapping[str, Any] | None

    def record(self, base_url: str, status_code: int | None) -> dict[str, Any]:
        """How the ticket remembers the call (``status_code`` None: not sent, a dry run)."""
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        url = f"{base_url.rstrip('/')}{self.path}" + (f"?{query}" if query else "")
        return {"method": self.method, "url": url, "body": dict(self.body or {}), "status_code": status_code}


@dataclasses.dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...]
    written: Mapping[str, str]  # field -> value this engine sets
    skipped: tuple[str, ...]  # fields left alone, and why


@dataclasses.dataclass(frozen=True)
class WritebackRules:
    min_confidence: float = 0.7
    jira_fields: frozenset[str] = frozenset({"labels"})
    label_prefix: str = "triage-"
    priority_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    category_map: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Draft:
    """A plan being drawn up for one source: the fields the engine takes, and those it leaves."""

    source: str  # as a person names it, for the notes: "Jira", "ServiceNow"
    previously_written: Mapping[str, str]
    written: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def for_ticket(cls, ticket: Ticket, source: str) -> Draft:
        return cls(source, dict(ticket.writeback.written) if ticket.writeback else {})

    def own(self, field: str, wanted: str, present: str | None) -> bool:
        """The engine-owned field rule: the engine sets a field only while the source holds
        nothing there, or the value this engine wrote; what someone else set stays.
        True when ``wanted`` must be sent."""
        if present not in (None, "", self.previously_written.get(field)):
            self.skipped.append(f"{field}: {present!r} was set in {self.source} by someone else, left alone")
            return False
        self.written[field] = wanted
        return present != wanted

    def plan(self, calls: list[Call]) -> Plan:
        return Plan(tuple(calls), dict(self.written), tuple(self.skipped))


RATIONALE_MAX_CHARS = 300
_MARKUP = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # markdown image
    (re.compile(r"\[([^\]|]*)\]\([^)]*\)"), r"\1"),  # markdown link: keep the text
    (re.compile(r"\[([^\]|]*)\|[^\]]*\]"), r"\1"),  # Jira wiki link [text|url]: keep the text
    (re.compile(r"\[~[^\]]*\]"), ""),  # Jira mention
    (re.compile(r"<[^>]*>"), ""),  # HTML and XML tags
    (re.compile(r"\{[a-z]+(:[^}]*)?\}", re.IGNORECASE), ""),  # Jira macros: {code}, {color:red}, {noformat}
    (re.compile(r"!\S+!"), ""),  # Jira embedded image !name.png!
    (re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.\S+|\bmailto:\S+", re.IGNORECASE), "(link removed)"),
    (re.compile(r"[*_`#|~^{}\[\]]+"), " "),  # emphasis and table characters of markdown and wiki markup
    (re.compile(r"\s+"), " "),
]


def safe_rationale(text: str) -> str:
    """A rationale fit to write into Jira or ServiceNow: it was written by a model that read the
    ticket, so it is plain text, short, with no markup and no links a reader could follow."""
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    text = text.strip()
    return text if len(text) <= RATIONALE_MAX_CHARS else text[: RATIONALE_MAX_CHARS - 1].rstrip() + "\u2026"


def confidence_of(ticket: Ticket) -> float:
    """A human's verdict is certain; otherwise the engine's own confidence in the classification."""
    if ticket.status in REVIEWED:
        return 1.0
    return ticket.classification.confidence if ticket.classification else 0.0


def labels_now(ticket: Ticket, rules: WritebackRules) -> bool:
    """Whether the engine is sure enough to set labels in the source, rather than ask for review."""
    return confidence_of(ticket) >= rules.min_confidence


def review_note(ticket: Ticket, rules: WritebackRules, *, to: str) -> str:
    """What the source is told when the engine is not sure enough ``to`` (label the issue, ...)."""
    labels = ticket.labels
    assert labels is not None
    rationale = safe_rationale(ticket.classification.rationale) if ticket.classification else ""
    return (
        f"Triage needs review: best guess {labels.category} at {confidence_of(ticket):.0%} confidence, below the "
        f"{rules.min_confidence:.0%} needed to {to}. {rationale}"
    ).strip()


def summary_line(ticket: Ticket) -> str:
    labels = ticket.labels
    assert labels is not None
    if ticket.status in REVIEWED:
        how = "confirmed by a reviewer" if ticket.corrections[-1].confirmed else "set by a reviewer"
        rationale = ticket.corrections[-1].comment or ""
    else:
        how = f"confidence {confidence_of(ticket):.0%}"
        if ticket.classification and ticket.classification.path is AnswerPath.MEMORY:
            how += f", answered from similar ticket {ticket.classification.matched_ticket_id}"
        rationale = ticket.classification.rationale if ticket.classification else ""
    rationale = safe_rationale(rationale)
    text = f"category {labels.category} ({how}); priority {labels.priority}; group {labels.assignment_group}."
    return f"{text} {rationale}".strip()
