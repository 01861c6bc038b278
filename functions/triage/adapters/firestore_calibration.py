"""Each tenant's fitted decision and what it has been measured to do, in Firestore
(CALIBRATION_COLLECTION): the document ``{tenant}`` holds the calibration ``triage calibrate``
fitted (per label: the model, each value's bar and the record it was fitted on), and its
``outcomes`` subcollection every measured outcome of a memory answer: an audit by the
classifier of record, a reviewer's confirmation or correction.

Recording an outcome is idempotent (one document per ticket, label and judge: the audit, or the
reviewer) and adds to the ``measured`` counts in the same write. A wrong answer then re-checks the
bar of the value it is about (``precision.live_check``): a bar that no longer keeps the target
rises, in a transaction, and says so. A right one needs no check, since it cannot lower a Wilson
bound (nor a point precision) that held, so it reads nothing: the check reads all of the value's
outcomes, and right answers are nearly all of them. Bars never loosen here: only a new
``triage calibrate`` does.

The counts are sharded: each outcome increments one of ``COUNTER_SHARDS`` documents of the
``measured`` subcollection (chosen by the outcome's id), and reading them sums the shards. Firestore
sustains about one write per second on one document; on the calibration document itself every
audited memory answer of a tenant would have queued behind the others (Firestore's distributed
counters pattern). Counts that an earlier version kept on the calibration document are still added.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from ..decision import Calibration
from ..errors import StoreUnavailable
from ..precision import live_check, wilson_lower
from .translate import translated

log = logging.getLogger(__name__)

COUNTER_SHARDS = 16  # about 16 outcomes a second per tenant before one shard is hot


def _translated(what: str) -> Any:
    return translated("Firestore", what, StoreUnavailable, catch=(google_exceptions.GoogleAPIError, TimeoutError))


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _split(calibration: Calibration) -> tuple[dict[str, Any], dict[tuple[str, str], list[Any]]]:
    """The calibration's document, and each bar's record apart: a record of up to 2,000
    (probability, right?) pairs per value would soon pass Firestore's 1 MiB per document, and
    only the live check reads it."""
    data = calibration.to_dict()
    records = {}
    for label, fitted in data["labels"].items():
        for value, bar in fitted["thresholds"].items():
            if "record" in bar:
                records[(label, value)] = bar.pop("record") or []
    return data, records


class FirestoreCalibrations:
    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        timeout_seconds: float = 10.0,
    ):
        self._client = client
        self._collection = client.collection(collection)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._timeout = timeout_seconds
        self._retry = Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout_seconds)
        self._cache: dict[str, tuple[float, Calibration | None]] = {}
        self._lock = threading.Lock()

    def _document(self, tenant: str) -> Any:
        return self._collection.document(_id(tenant))

    def get(self, tenant: str) -> Calibration | None:
        """The tenant's calibration (None: never calibrated), cached for ``cache_seconds``."""
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None and self._clock() - cached[0] < self._cache_seconds:
                return cached[1]
        with _translated("read"):
            snapshot = self._document(tenant).get(retry=self._retry, timeout=self._timeout)
        data = snapshot.to_dict() if snapshot.exists else None
        # Outcomes may be measured before the first calibration: no decision is fitted yet then.
        found = Calibration.from_dict(data) if data and "labels" in data else None
        with self._lock:
            self._cache[tenant] = (self._clock(), found)
        return found

    def save(self, calibration: Calibration) -> None:
        """Replace the fitted decision; the ``measured`` counts of live outcomes are kept. Each
        bar's record goes to a document of its own (``records``), tagged with ``fitted_at``."""
        data, records = _split(calibration)
        reference = self._document(calibration.tenant)
        writes: list[tuple[Any, dict[str, Any], bool]] = [
            (
                reference.collection("records").document(_id(f"{label}\0{value}")),
                {
                    "label": label,
                    "value": value,
                    "fitted_at": calibration.fitted_at,
                    "probability": [float(p) for p, _ in pairs],
                    "correct": [int(o) for _, o in pairs],
                },
                False,
            )
            for (label, value), pairs in records.items()
        ]
        writes.append((reference, data, True))  # last: a reader sees the new bars only with their records
        with _translated("write"):
            for start in range(0, len(writes), 400):
                batch = self._client.batch()
                for document, fields, merge in writes[start : start + 400]:
                    if merge:
                        batch.set(document, fields, merge=list(fields))
                    else:
                        batch.set(document, fields)
                batch.commit(timeout=self._timeout)
        with self._lock:
            self._cache.pop(calibration.tenant, None)

    def fitted_record(self, tenant: str, label: str, value: str, fitted_at: str) -> list[tuple[float, int]]:
        """The (probability, right?) pairs a bar was fitted on; none if it was fitted without."""
        document = self._document(tenant).collection("records").document(_id(f"{label}\0{value}"))
        with _translated("read"):
            snapshot = document.get(retry=self._retry, timeout=self._timeout)
        found = snapshot.to_dict() if snapshot.exists else None
        if not found or found.get("fitted_at") != fitted_at:
            return []
        return [(float(p), int(o)) for p, o in zip(found["probability"], found["correct"], strict=True)]

    def record(
        self,
        *,
        tenant: str,
        ticket_id: str,
        label: str,
        value: str,
        probability: float,
        correct: bool,
        source: str,
    ) -> dict[str, Any] | None:
        """Record one outcome of a memory answer (None: this judge's verdict on it was recorded
        before); ``{"tightened": the value's new bar, or None}``."""
        outcome = {
            "ticket_id": ticket_id,
            "label": label,
            "value": value,
            "probability": probability,
            "correct": correct,
            "source": source,  # audit | confirmation | correction
            "at": datetime.now(UTC),
        }
        judge = "audit" if source == "audit" else "review"
        reference = self._document(tenant)
        outcome_id = _id(f"{ticket_id}\0{label}\0{judge}")
        shard = reference.collection("measured").document(str(int(outcome_id, 16) % COUNTER_SHARDS))
        batch = self._client.batch()
        batch.create(reference.collection("outcomes").document(outcome_id), outcome)
        counts = {"answered": firestore.Increment(1), "correct": firestore.Increment(int(correct))}
        batch.set(shard, {"counts": {label: {value: counts}}}, merge=True)
        with _translated("write"):
            try:
                batch.commit(timeout=self._timeout)
            except (google_exceptions.AlreadyExists, google_exceptions.Conflict):
                return None  # a redelivery, or a second verdict of the same judge on the same answer
        return {"tightened": None if correct else self._tighten(tenant, label, value)}

    def measured(self, tenant: str) -> dict[str, dict[str, dict[str, int]]]:
        """Per label and value: live outcomes recorded (answered) and how many were right."""
        reference = self._document(tenant)
        with _translated("read"):
            earlier = reference.get(field_paths=["measured"], retry=self._retry, timeout=self._timeout)
            streamed = reference.collection("measured").stream(retry=self._retry, timeout=self._timeout)
            shards = [shard.to_dict().get("counts", {}) for shard in streamed]
        parts = [(earlier.to_dict() or {}).get("measured", {}) if earlier.exists else {}, *shards]
        total: dict[str, dict[str, dict[str, int]]] = {}
        for part in parts:
            for label, values in part.items():
                for value, counts in values.items():
                    summed = total.setdefault(label, {}).setdefault(value, {"answered": 0, "correct": 0})
                    summed["answered"] += int(counts.get("answered", 0))
                    summed["correct"] += int(counts.get("correct", 0))
        return total

    def outcomes(
        self, tenant: str, label: str, value: str | None = None, *, at_least: float | None = None
    ) -> list[dict[str, Any]]:
        query: Any = self._document(tenant).collection("outcomes").where(filter=FieldFilter("label", "==", label))
        if value is not None:
            query = query.where(filter=FieldFilter("value", "==", value))
        if at_least is not None:  # infra/firestore.tf: the index on label, value and probability
            query = query.where(filter=FieldFilter("probability", ">=", at_least))
        with _translated("query"):
            return [s.to_dict() for s in query.stream(retry=self._retry, timeout=self._timeout)]

    def _tighten(self, tenant: str, label: str, value: str) -> dict[str, Any] | None:
        calibration = self.get(tenant)
        fitted = calibration.labels.get(label) if calibration else None
        bar = dict(fitted.thresholds.get(value) or {}) if fitted else {}
        if calibration is None or bar.get("threshold") is None:
            return None
        # Only outcomes at or above the bar: below it they neither hold it nor choose a higher one.
        above = self.outcomes(tenant, label, value, at_least=float(bar["threshold"]))
        live = [(float(o["probability"]), int(bool(o["correct"]))) for o in above]
        record = self.fitted_record(tenant, label, value, calibration.fitted_at) + live
        checked = live_check(bar, record, target=calibration.target)
        if not checked.get("changed"):
            return None
        reference = self._document(tenant)

        @firestore.transactional
        def apply(transaction: Any) -> None:
            current = reference.get(transaction=transaction).to_dict() or {}
            thresholds = current.get("labels", {}).get(label, {}).get("thresholds", {})
            if thresholds.get(value, {}).get("threshold") != bar.get("threshold"):
                return  # another outcome moved it meanwhile
            moved = {**checked, "tightened_at": datetime.now(UTC).isoformat(), "previous": bar.get("threshold")}
            path = FieldPath("labels", label, "thresholds", value).to_api_repr()
            transaction.update(reference, {path: moved})

        with _translated("tighten"):
            apply(self._client.transaction())
        with self._lock:
            self._cache.pop(tenant, None)
        correct = sum(o for _, o in live)
        log.warning(
            "memory threshold tightened: the measured precision fell below the target",
            extra={
                "tenant": tenant,
                "label": label,
                "value": value,
                "threshold_before": bar.get("threshold"),
                "threshold_after": checked.get("threshold"),
                "measured_at_or_above_bar": f"{correct}/{len(live)}",
                "lower95": round(wilson_lower(correct, len(live)), 4) if live else None,
                "target": calibration.target,
            },
        )
        return checked
