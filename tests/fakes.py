"""Small working in-memory stand-ins for the ports, for unit tests.

Each keeps the contract of its port (the store's transactions are atomic, the memory
filters by tenant and ranks by cosine similarity, the embedder gives unit vectors
whose dot product grows with shared words), and can be told to fail, so the
service is tested against behaviour, not against mocks of our own code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from triage.decision import Calibration
from triage.domain import (
    AnswerPath,
    Classification,
    Labels,
    LabelSource,
    MemoryEntry,
    Neighbour,
    Ticket,
    follows_correction,
)
from triage.errors import (
    InvalidLabels,
    InvalidModelOutput,
    MemoryUnavailable,
    PublishFailed,
    StoreUnavailable,
    UnknownTicket,
)
from triage.ports import ClassificationRequest
from triage.precision import live_check


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class InMemoryTicketStore:
    def __init__(self) -> None:
        self.tickets: dict[str, Ticket] = {}
        self.deliveries: set[tuple[str, str]] = set()
        self.fail_next: list[str] = []  # operations ("create", "get", "update", "delete") that fail once
        self.writes = 0
        self._lock = threading.Lock()

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.fail_next:
            self.fail_next.remove(operation)
            raise StoreUnavailable(f"injected {operation} failure")

    def create(self, ticket: Ticket) -> Ticket | None:
        with self._lock:
            self._maybe_fail("create")
            if ticket.ticket_id in self.tickets:
                return self.tickets[ticket.ticket_id]
            self.tickets[ticket.ticket_id] = ticket
            self.writes += 1
            return None

    def get(self, ticket_id: str) -> Ticket | None:
        with self._lock:
            self._maybe_fail("get")
            return self.tickets.get(ticket_id)

    def update(self, ticket_id: str, transition: Callable[[Ticket], Ticket]) -> Ticket:
        with self._lock:
            self._maybe_fail("update")
            if ticket_id not in self.tickets:
                raise UnknownTicket(f"no ticket with id {ticket_id!r}")
            updated = transition(self.tickets[ticket_id])
            self.tickets[ticket_id] = updated
            self.writes += 1
            return updated

    def claim_delivery(self, source: str, delivery_id: str) -> bool:
        with self._lock:
            self._maybe_fail("claim_delivery")
            if (source, delivery_id) in self.deliveries:
                return False
            self.deliveries.add((source, delivery_id))
            return True

    def release_delivery(self, source: str, delivery_id: str) -> None:
        with self._lock:
            self.deliveries.discard((source, delivery_id))

    def find(self, *, status=None, writeback_status=None, remembered=None, updated_before=None, limit=100):
        with self._lock:
            self._maybe_fail("find")
            found = [
                t
                for t in self.tickets.values()
                if (status is None or t.status is status)
                and (writeback_status is None or (t.writeback is not None and t.writeback.status is writeback_status))
                and (remembered is None or (t.classification is not None and t.classification.remembered is remembered))
                and (updated_before is None or t.updated_at < updated_before)
            ]
            return sorted(found, key=lambda t: t.updated_at)[:limit]

    def delete(self, ticket_id: str) -> None:
        with self._lock:
            self._maybe_fail("delete")
            self.tickets.pop(ticket_id, None)

    def recent(self, *, status=None, limit=50):
        with self._lock:
            found = [t for t in self.tickets.values() if status is None or t.status is status]
            return sorted(found, key=lambda t: t.updated_at, reverse=True)[:limit]

    def _created(self, status, since, until=None, path=None):
        return [
            t
            for t in self.tickets.values()
            if (status is None or t.status is status)
            and (path is None or (t.classification is not None and t.classification.path is path))
            and t.created_at >= since
            and (until is None or t.created_at < until)
        ]

    def count(self, *, since, until=None, status=None, path=None, classifier=None):
        with self._lock:
            found = self._created(status, since, until, path)
            if classifier is not None:
                found = [t for t in found if t.classification and t.classification.classifier == classifier]
            return len(found)

    def answers(self, *, since, limit=1000):
        with self._lock:
            recent = sorted(
                (t for t in self.tickets.values() if t.created_at >= since), key=lambda t: t.created_at, reverse=True
            )[:limit]
            return [(t.classification.labels.category, t.classification.path) for t in recent if t.classification]

    def token_totals(self, *, since):
        with self._lock:
            tickets = self._created(None, since, path=AnswerPath.CLASSIFIER)
            return (
                len(tickets),
                sum(t.classification.input_tokens or 0 for t in tickets),
                sum(t.classification.output_tokens or 0 for t in tickets),
            )

    def classification_times(self, *, since, limit=1000):
        with self._lock:
            recent = sorted(
                (t for t in self.tickets.values() if t.created_at >= since), key=lambda t: t.created_at, reverse=True
            )[:limit]
            return [
                (t.classification.classified_at - t.created_at).total_seconds() * 1000
                for t in recent
                if t.classification and t.classification.classified_at
            ]


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.failures = 0  # how many of the next publishes fail

    def publish(self, ticket_id: str, kind: str) -> str:
        if self.failures:
            self.failures -= 1
            raise PublishFailed("injected publish failure")
        self.messages.append((ticket_id, kind))
        return str(len(self.messages))


_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag of words hashed into 256 dimensions, unit length: shared words mean similarity."""

    name = "hashing-256"
    version = "1"

    def __init__(self, dimensions: int = 256):
        self.dimensions = dimensions
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        vectors = []
        for text in texts:
            vector = [0.0] * self.dimensions
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                vector[int.from_bytes(digest, "big") % self.dimensions] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


class InMemoryMemory:
    def __init__(self) -> None:
        self.stored: dict[str, MemoryEntry] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise MemoryUnavailable("injected: memory down")

    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]:
        self._check()
        scored = [
            Neighbour(
                ticket_id=entry.ticket_id,
                similarity=sum(a * b for a, b in zip(embedding, entry.embedding, strict=True)),
                labels=entry.labels,
                label_source=entry.label_source,
                text=entry.text,
                source_ticket_id=entry.source_ticket_id,
            )
            for entry in self.stored.values()
            if entry.tenant == tenant
        ]
        return sorted(scored, key=lambda n: n.similarity, reverse=True)[:limit]

    def remember(self, *entries: MemoryEntry) -> None:
        self._check()
        for entry in entries:
            self.stored[entry.ticket_id] = entry

    def known(self, ticket_ids: Sequence[str], *, tenant: str) -> set[str]:
        self._check()
        return {i for i in ticket_ids if i in self.stored and self.stored[i].tenant == tenant}

    def entries(self, tenant: str) -> Iterator[MemoryEntry]:
        self._check()
        for entry in list(self.stored.values()):
            if entry.tenant == tenant:
                yield dataclasses.replace(entry, embedding=())

    def relabel(
        self,
        ticket_id: str,
        *,
        tenant: str,
        labels: Labels,
        label_source: LabelSource,
        over: frozenset[LabelSource] | None = None,
    ) -> bool:
        self._check()
        entry = self.stored.get(ticket_id)
        if entry is None or entry.tenant != tenant or (over is not None and entry.label_source not in over):
            return False
        self.stored[ticket_id] = dataclasses.replace(entry, labels=labels, label_source=label_source)
        for other in list(self.stored.values()):
            if other.source_ticket_id == ticket_id and follows_correction(other.label_source):
                self.stored[other.ticket_id] = dataclasses.replace(
                    other, labels=labels, label_source=LabelSource.MEMORY
                )
        return True

    def health(self) -> dict[str, dict[str, object]]:
        self._check()
        tenants: dict[str, int] = {}
        for entry in self.stored.values():
            tenants[entry.tenant] = tenants.get(entry.tenant, 0) + 1
        return {t: {"recorded": n, "indexed": n, "index_missing": False} for t, n in sorted(tenants.items())}


class ScriptedClassifier:
    """Answers with fixed labels, or raises what it is told to, and records every request. Like
    every classifier it answers inside the taxonomy or raises InvalidModelOutput."""

    name = "scripted"

    def __init__(self, labels: Labels, confidence: float = 0.8):
        self.labels = labels
        self.confidence = confidence
        self.requests: list[ClassificationRequest] = []
        self.raise_next: list[Exception] = []

    def classify(self, request: ClassificationRequest) -> Classification:
        self.requests.append(request)
        if self.raise_next:
            raise self.raise_next.pop(0)
        try:
            request.taxonomy.check(self.labels)
        except InvalidLabels as error:
            raise InvalidModelOutput(f"{self.name} answered outside the taxonomy: {error}") from error
        return Classification(
            labels=self.labels,
            confidence=self.confidence,
            rationale="scripted answer",
            path=AnswerPath.CLASSIFIER,
            classifier=self.name,
        )


class InMemoryCalibrations:
    """Calibrations and outcomes in a dict; tightens bars by the same rule as the Firestore one."""

    def __init__(self) -> None:
        self.calibrations: dict[str, Calibration] = {}
        self.recorded: dict[tuple[str, str, str], dict] = {}

    def get(self, tenant: str) -> Calibration | None:
        """The decision, without the records its bars were fitted on (only the live check reads them)."""
        found = self.calibrations.get(tenant)
        if found is None:
            return None
        labels = {
            name: dataclasses.replace(
                label,
                thresholds={v: {k: x for k, x in bar.items() if k != "record"} for v, bar in label.thresholds.items()},
            )
            for name, label in found.labels.items()
        }
        return dataclasses.replace(found, labels=labels)

    def save(self, calibration: Calibration) -> None:
        self.calibrations[calibration.tenant] = calibration

    def outcomes(self, tenant: str, label: str, value: str | None = None, *, at_least: float | None = None) -> list:
        return [
            o
            for (owner, _, name, _judge), o in self.recorded.items()
            if owner == tenant
            and name == label
            and (value is None or o["value"] == value)
            and (at_least is None or o["probability"] >= at_least)
        ]

    def record(self, *, tenant, ticket_id, label, value, probability, correct, source):
        key = (tenant, ticket_id, label, "audit" if source == "audit" else "review")
        if key in self.recorded:
            return None
        self.recorded[key] = {"label": label, "value": value, "probability": probability, "correct": correct,
                              "source": source, "ticket_id": ticket_id}  # fmt: skip
        return {"tightened": None if correct else self._tighten(tenant, label, value)}  # as FirestoreCalibrations

    def measured(self, tenant: str) -> dict:
        found: dict = {}
        for (owner, *_), o in self.recorded.items():
            if owner == tenant:
                counts = found.setdefault(o["label"], {}).setdefault(o["value"], {"answered": 0, "correct": 0})
                counts["answered"] += 1
                counts["correct"] += int(o["correct"])
        return found

    def _tighten(self, tenant, label, value):
        calibration = self.calibrations.get(tenant)
        fitted = calibration.labels.get(label) if calibration else None
        bar = dict(fitted.thresholds.get(value) or {}) if fitted else {}
        if calibration is None or bar.get("threshold") is None:
            return None
        above = self.outcomes(tenant, label, value, at_least=bar["threshold"])
        live = [(o["probability"], int(o["correct"])) for o in above]
        checked = live_check(bar, [*(tuple(r) for r in bar.get("record") or []), *live], target=calibration.target)
        if not checked.get("changed"):
            return None
        checked = {**checked, "tightened_at": datetime.now(UTC).isoformat(), "previous": bar.get("threshold")}
        thresholds = {**fitted.thresholds, value: checked}
        labels = {**calibration.labels, label: dataclasses.replace(fitted, thresholds=thresholds)}
        self.calibrations[tenant] = dataclasses.replace(calibration, labels=labels)
        return checked
