"""TicketStore on Cloud Firestore (or its emulator, when FIRESTORE_EMULATOR_HOST is set).

One document per ticket, keyed by ticket id. Every change applies a pure transition from
``domain`` to the ticket and writes the result on the condition that nobody wrote in
between (an update-time precondition), so concurrent deliveries and a human's correction
never overwrite each other. The ticket a change starts from is read, unless this process
wrote the document last: then the version it wrote is the start, and the precondition is
that version's update time (the worker's answer after its claim is one write, not a read and
a write). A precondition that fails means someone else wrote: the ticket is read again. This
module must never decide a transition itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
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
# Tickets whose last write this process made, kept to start the next change from: enough for
# every delivery in flight (the worker's concurrency) between its claim and its answer.
KNOWN_VERSIONS = 256
# A warm-up read at instance start waits no longer than this; it is best effort.
WARM_UP_TIMEOUT_SECONDS = 5.0


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
        self._versions: OrderedDict[str, tuple[Ticket, Any]] = OrderedDict()
        self._versions_lock = threading.Lock()

    def warm_up(self) -> None:
        """Open the connection (and, in production, fetch the credentials' token) before the
        first request needs it: one read of a document that does not exist."""
        self._collection.document("_warm_up").get(retry=None, timeout=WARM_UP_TIMEOUT_SECONDS)

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
        """Transform and write with a precondition on the document's update time.

        Optimistic, not a transaction: a process killed mid-update holds no lock (the
        emulator never releases an abandoned transaction's locks), and a lost race is
        simply read again, with jittered backoff.
        """
        written = self._update_known(ticket_id, transition)
        if written is not None:
            return written
        reference = self._collection.document(ticket_id)

        def apply() -> Ticket:
            snapshot = reference.get(retry=self._retry, timeout=self._timeout)
            if not snapshot.exists:
                raise UnknownTicket(f"no ticket with id {ticket_id!r}")
            updated = transition(ticket_from_document(snapshot.to_dict()))
            result = reference.update(
                ticket_to_document(updated),
                option=self._client.write_option(last_update_time=snapshot.update_time),
                retry=self._retry,
                timeout=self._timeout,
            )
            self._know(ticket_id, updated, result.update_time)
            return updated

        retrying = Retrying(
            retry=retry_if_exception(_is_contention),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self._timeout),
            reraise=True,
        )
        with _translated("update"):
            return retrying(apply)

    def _update_known(self, ticket_id: str, transition: Callable[[Ticket], Ticket]) -> Ticket | None:
        """The change applied to the version this process wrote last, in one write; None when
        there is no such version, the transition refuses it, or someone wrote since (the
        caller then reads the ticket: a refusal of a possibly stale version decides nothing)."""
        with self._versions_lock:
            known = self._versions.get(ticket_id)
        if known is None:
            return None
        ticket, update_time = known
        try:
            updated = transition(ticket)
        except Exception:  # Unchanged, TicketBusy...: decided again on the ticket as read
            return None
        try:
            result = self._collection.document(ticket_id).update(
                ticket_to_document(updated),
                option=self._client.write_option(last_update_time=update_time),
                retry=self._retry,
                timeout=self._timeout,
            )
        except (google_exceptions.GoogleAPIError, TimeoutError):
            # Someone wrote since (a failed precondition), the ticket is gone, or whether the
            # write landed is unknown: the read path decides, on the ticket as it is now.
            self._forget(ticket_id)
            return None
        self._know(ticket_id, updated, result.update_time)
        return updated

    def _know(self, ticket_id: str, ticket: Ticket, update_time: Any) -> None:
        with self._versions_lock:
            self._versions[ticket_id] = (ticket, update_time)
            self._versions.move_to_end(ticket_id)
            while len(self._versions) > KNOWN_VERSIONS:
                self._versions.popitem(last=False)

    def _forget(self, ticket_id: str) -> None:
        with self._versions_lock:
            self._versions.pop(ticket_id, None)

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
        self,
        status: Status | None,
        since: datetime,
        until: datetime | None = None,
        path: AnswerPath | None = None,
        classifier: str | None = None,
    ) -> Any:
        query: Any = self._collection
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        if path is not None:
            query = query.where(filter=FieldFilter("classification.path", "==", path.value))
        if classifier is not None:
            query = query.where(filter=FieldFilter("classification.classifier", "==", classifier))
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
        classifier: str | None = None,
    ) -> int:
        with _translated("count"):
            query = self._created(status, since, until, path, classifier)
            result = query.count(alias="n").get(timeout=self._timeout)
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

    def answers(self, *, since: datetime, limit: int = 1000) -> list[tuple[str, AnswerPath]]:
        query = self._collection.where(filter=FieldFilter("created_at", ">=", since))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        query = query.select(["classification.labels.category", "classification.path"])
        with _translated("query"):
            found = [(s.to_dict() or {}).get("classification") or {} for s in query.stream(timeout=self._timeout)]
        return [
            (str(c["labels"]["category"]), AnswerPath(c["path"]))
            for c in found
            if isinstance(c.get("labels"), dict) and c["labels"].get("category") and c.get("path")
        ]

    def delete(self, ticket_id: str) -> None:
        self._forget(ticket_id)
        with _translated("delete"):
            self._collection.document(ticket_id).delete(retry=self._retry, timeout=self._timeout)
