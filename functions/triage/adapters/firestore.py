"""TicketStore on Cloud Firestore (or its emulator, when FIRESTORE_EMULATOR_HOST is set).

One document per ticket, keyed by ticket id. Every change reads the ticket, applies a
pure transition from ``domain`` and writes the result on the condition that nobody
wrote in between, so concurrent deliveries and a human's correction never overwrite
each other. This module must never decide a transition itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from ..domain import AnswerPath, Status, Ticket, WritebackStatus
from ..errors import StoreUnavailable, UnknownTicket
from .firestore_records import ticket_from_document, ticket_to_document
from .translate import translated

# How long a webhook delivery id is remembered for deduplication (TTL field ``expire_at``).
DELIVERY_RETENTION = timedelta(days=30)


def _is_contention(error: BaseException) -> bool:
    """Another writer got there first: the precondition failed (or, in a transaction, it aborted)."""
    return isinstance(error, (google_exceptions.FailedPrecondition, google_exceptions.Aborted))


def _translated(what: str) -> Any:
    return translated(
        "Firestore",
        what,
        StoreUnavailable,
        catch=(google_exceptions.GoogleAPIError, TimeoutError),
        keep=(google_exceptions.AlreadyExists,),
    )


class FirestoreTicketStore:
    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        *,
        deliveries_collection: str = "webhook_deliveries",
        timeout_seconds: float = 10.0,
    ):
        self._client = client
        self._collection = client.collection(collection)
        self._deliveries = client.collection(deliveries_collection)
        self._timeout = timeout_seconds
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)

    def create(self, ticket: Ticket) -> Ticket | None:
        reference = self._collection.document(ticket.ticket_id)
        with _translated("create"):
            try:
                reference.create(ticket_to_document(ticket), retry=self._retry, timeout=self._timeout)
                return None
            except google_exceptions.AlreadyExists:
                pass
        existing = self.get(ticket.ticket_id)
        if existing is None:  # deleted again between the two calls: a failed publish undone
            raise StoreUnavailable(f"ticket {ticket.ticket_id} vanished while being created")
        return existing

    def get(self, ticket_id: str) -> Ticket | None:
        with _translated("read"):
            snapshot = self._collection.document(ticket_id).get(retry=self._retry, timeout=self._timeout)
        return ticket_from_document(snapshot.to_dict()) if snapshot.exists else None

    def update(self, ticket_id: str, transition: Callable[[Ticket], Ticket]) -> Ticket:
        """Read, transform, write with a precondition on the document's update time.

        Optimistic, not a transaction: a process killed mid-update holds no lock (the
        emulator never releases an abandoned transaction's locks), and a lost race is
        simply read again, with jittered backoff.
        """
        reference = self._collection.document(ticket_id)

        def apply() -> Ticket:
            snapshot = reference.get(retry=self._retry, timeout=self._timeout)
            if not snapshot.exists:
                raise UnknownTicket(f"no ticket with id {ticket_id!r}")
            updated = transition(ticket_from_document(snapshot.to_dict()))
            reference.update(
                ticket_to_document(updated),
                option=self._client.write_option(last_update_time=snapshot.update_time),
                retry=self._retry,
                timeout=self._timeout,
            )
            return updated

        retrying = Retrying(
            retry=retry_if_exception(_is_contention),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self._timeout),
            reraise=True,
        )
        with _translated("update"):
            return retrying(apply)

    def mark_published(self, ticket_id: str, now: datetime) -> None:
        # A field update, not a transaction: it touches nothing a transition decides, and
        # costs a third of a read-modify-write on the ingest path.
        with _translated("update"):
            self._collection.document(ticket_id).update(
                {"published": True, "updated_at": now}, retry=self._retry, timeout=self._timeout
            )

    def _delivery(self, source: str, delivery_id: str) -> Any:
        key = hashlib.sha256(f"{source}\0{delivery_id}".encode()).hexdigest()[:40]
        return self._deliveries.document(key)

    def claim_delivery(self, source: str, delivery_id: str) -> bool:
        received = datetime.now(UTC)
        record = {
            "source": source,
            "delivery_id": delivery_id[:500],
            "received_at": received,
            # Firestore's TTL policy on this field (infra/firestore.tf) deletes the record later:
            # sources stop retrying a delivery within days, so a month of memory is plenty.
            "expire_at": received + DELIVERY_RETENTION,
        }
        with _translated("create"):
            try:
                self._delivery(source, delivery_id).create(record, retry=self._retry, timeout=self._timeout)
                return True
            except google_exceptions.AlreadyExists:
                return False

    def release_delivery(self, source: str, delivery_id: str) -> None:
        with _translated("delete"):
            self._delivery(source, delivery_id).delete(retry=self._retry, timeout=self._timeout)

    def find(
        self,
        *,
        status: Status | None = None,
        writeback_status: WritebackStatus | None = None,
        remembered: bool | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Ticket]:
        query: Any = self._collection
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        if writeback_status is not None:
            query = query.where(filter=FieldFilter("writeback.status", "==", writeback_status.value))
        if remembered is not None:
            query = query.where(filter=FieldFilter("classification.remembered", "==", remembered))
        if updated_before is not None:
            query = query.where(filter=FieldFilter("updated_at", "<", updated_before))
        return self._tickets(query.order_by("updated_at").limit(limit))

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Ticket]:
        query: Any = self._collection
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        return self._tickets(query.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit))

    def _tickets(self, query: Any) -> list[Ticket]:
        with _translated("query"):
            return [ticket_from_document(s.to_dict()) for s in query.stream(retry=self._retry, timeout=self._timeout)]

    def _created(
        self, status: Status | None, since: datetime, until: datetime | None = None, path: AnswerPath | None = None
    ) -> Any:
        query: Any = self._collection
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        if path is not None:
            query = query.where(filter=FieldFilter("classification.path", "==", path.value))
        query = query.where(filter=FieldFilter("created_at", ">=", since))
        if until is not None:
            query = query.where(filter=FieldFilter("created_at", "<", until))
        return query

    def count(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        status: Status | None = None,
        path: AnswerPath | None = None,
    ) -> int:
        with _translated("count"):
            result = self._created(status, since, until, path).count(alias="n").get(timeout=self._timeout)
        return int(result[0][0].value)

    def token_totals(self, *, since: datetime) -> tuple[int, int, int]:
        query = self._created(None, since, path=AnswerPath.CLASSIFIER)
        aggregation = (
            query.count(alias="n")
            .sum("classification.input_tokens", alias="input")
            .sum("classification.output_tokens", alias="output")
        )
        with _translated("aggregate"):
            values = {r.alias: r.value for r in aggregation.get(timeout=self._timeout)[0]}
        return int(values["n"]), int(values["input"] or 0), int(values["output"] or 0)

    def classification_times(self, *, since: datetime, limit: int = 1000) -> list[float]:
        # A projection of one number per ticket, newest first: bounded, never a full scan.
        query = self._collection.where(filter=FieldFilter("created_at", ">=", since))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        query = query.select(["time_to_classify_ms"])
        with _translated("query"):
            # A ticket not classified yet has no such field: the projection leaves it out.
            values = [(s.to_dict() or {}).get("time_to_classify_ms") for s in query.stream(timeout=self._timeout)]
        return [float(v) for v in values if isinstance(v, int | float)]

    def delete(self, ticket_id: str) -> None:
        with _translated("delete"):
            self._collection.document(ticket_id).delete(retry=self._retry, timeout=self._timeout)
