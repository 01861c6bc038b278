"""The outside things the use cases talk to, one small Protocol each.

Adapters in ``triage.adapters`` implement these against Google Cloud, Chroma and the
models; the tests implement them in memory (``tests/fakes.py``), and both pass the same
contract tests. A use case names only the ports it needs. This module must never import
an adapter or a client library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .decision import Calibration, LabelEvidence
from .domain import (
    AnswerPath,
    Call,
    Classification,
    Labels,
    LabelSource,
    MemoryEntry,
    MessageKind,
    Neighbour,
    Plan,
    Status,
    Taxonomy,
    Ticket,
    WritebackStatus,
)

Clock = Callable[[], datetime]


class Tickets(Protocol):
    """The system of record for tickets: one document per ticket, changed atomically."""

    def create(self, ticket: Ticket) -> Ticket | None:
        """Store a new ticket; return None if created, else the ticket already stored under its id."""

    def get(self, ticket_id: str) -> Ticket | None: ...

    def update(self, ticket_id: str, transition: Callable[[Ticket], Ticket]) -> Ticket:
        """Apply ``transition`` atomically (read, transform, write, retried on contention).

        Raises UnknownTicket if there is no such ticket and lets ``domain.Unchanged``
        through, having written nothing.
        """

    def delete(self, ticket_id: str) -> None: ...


class WorkQueries(Protocol):
    """What the reconciler looks for: work that stopped."""

    def find(
        self,
        *,
        status: Status | None = None,
        writeback_status: WritebackStatus | None = None,
        remembered: bool | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Ticket]:
        """Tickets matching every filter given, least recently updated first."""


class ReadModel(Protocol):
    """What the operator view reads: recent tickets and aggregations."""

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Ticket]:
        """The most recently updated tickets, newest first."""

    def count(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        status: Status | None = None,
        path: AnswerPath | None = None,
        classifier: str | None = None,
    ) -> int:
        """Tickets created in [since, until) with this status, answered by this path, or by this
        classifier: an aggregation (one filter at a time)."""

    def token_totals(self, *, since: datetime) -> tuple[int, int, int]:
        """(tickets, input tokens, output tokens) of tickets the classifier answered, created since."""

    def classification_times(self, *, since: datetime, limit: int = 1000) -> list[float]:
        """Milliseconds from created to classified, of the newest ``limit`` tickets created since
        (those not classified yet have no figure)."""

    def answers(self, *, since: datetime, limit: int = 1000) -> list[tuple[str, AnswerPath]]:
        """(category, path) of the classification of each of the newest ``limit`` tickets
        created since that have one: a projection."""


class DeliveryLog(Protocol):
    """Webhook delivery ids seen, so a source's retry is taken once."""

    def claim_delivery(self, source: str, delivery_id: str) -> bool:
        """Record a webhook delivery id; False if it was recorded before (atomic, create-only)."""

    def release_delivery(self, source: str, delivery_id: str) -> None:
        """Forget a delivery id, so the source's retry of a failed delivery is taken."""


class Publisher(Protocol):
    def publish(self, ticket_id: str, kind: MessageKind) -> str:
        """Publish a work message and return its message id once Pub/Sub has acknowledged it."""


class Embedder(Protocol):
    name: str
    version: str  # changes whenever the vectors would: the memory refuses vectors of another version

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, so that a dot product is the cosine similarity."""


class Memory(Protocol):
    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]: ...

    def remember(self, *entries: MemoryEntry) -> None:
        """Insert or replace the entries with these ticket ids (idempotent)."""

    def known(self, ticket_ids: Sequence[str], *, tenant: str) -> set[str]:
        """Which of these ids the memory holds for the tenant."""

    def entries(self, tenant: str) -> Iterator[MemoryEntry]:
        """Every entry of a tenant, without its embedding (``embedding`` is empty)."""

    def relabel(
        self,
        ticket_id: str,
        *,
        tenant: str,
        labels: Labels,
        label_source: LabelSource,
        over: frozenset[LabelSource] | None = None,
    ) -> bool:
        """Give an entry, and entries answered from it, new labels; False if it is not in memory,
        or (``over``) its labels are not from one of these sources: an audit never overwrites a
        reviewer's labels."""

    def health(self) -> dict[str, dict[str, Any]]:
        """Per tenant: entries on record, entries indexed, and whether the index is missing."""


@dataclasses.dataclass(frozen=True)
class ClassificationRequest:
    text: str
    embedding: Sequence[float]
    examples: Sequence[Neighbour]  # the few-shot selection: human-verified first, deduplicated, in budget
    taxonomy: Taxonomy
    neighbours: Sequence[Neighbour] = ()  # every neighbour fetched, nearest first
    tenant: str = "default"


class Classifier(Protocol):
    name: str

    def classify(self, request: ClassificationRequest) -> Classification:
        """Labels inside the taxonomy, or InvalidModelOutput / ClassifierUnavailable."""


class EvidenceSource(Protocol):
    """The local classifier, as the calibrated decision reads it."""

    def evidence(self, request: ClassificationRequest) -> dict[str, LabelEvidence]:
        """Per label, its distribution over the label's values and the parts of it."""


class Verifier(Protocol):
    """A second opinion on another classifier's labels (the local classifier, on an LLM's)."""

    def agreement(self, request: ClassificationRequest, labels: Labels) -> float:
        """How far its own evidence backs ``labels``, in [0, 1]."""


class Calibrations(Protocol):
    """Each tenant's fitted decision, and the measured outcomes of its memory answers."""

    def get(self, tenant: str) -> Calibration | None:
        """The tenant's calibration; None if it was never calibrated."""

    def save(self, calibration: Calibration) -> None: ...

    def record(
        self, *, tenant: str, ticket_id: str, label: str, value: str, probability: float, correct: bool, source: str
    ) -> dict[str, Any] | None:
        """Record an outcome of a memory answer (``source``: audit, confirmation or correction);
        idempotent per ticket, label and judge (the audit, or the reviewer): None if recorded
        before, else ``{"tightened": the value's new bar, or None}``."""

    def outcomes(
        self, tenant: str, label: str, value: str | None = None, *, at_least: float | None = None
    ) -> list[dict[str, Any]]:
        """The recorded outcomes of a label (of one value; ``at_least``: only those the decision gave
        at least this probability, all a bar's re-check needs)."""

    def measured(self, tenant: str) -> dict[str, dict[str, dict[str, int]]]:
        """Per label and value: outcomes recorded (``answered``) and how many were ``correct``."""


class SourceClient(Protocol):
    """Jira's or ServiceNow's REST API, as far as writing labels back goes."""

    base_url: str

    def read(self, ticket: Ticket) -> Mapping[str, Any]:
        """The source's current values of the fields a write-back may touch."""

    def send(self, call: Call) -> int:
        """Make the call; its HTTP status, or WritebackFailed after the retries."""


@dataclasses.dataclass(frozen=True)
class WritebackTarget:
    client: SourceClient
    plan: Callable[[Ticket, Mapping[str, Any]], Plan]
    dry_run: bool = False
