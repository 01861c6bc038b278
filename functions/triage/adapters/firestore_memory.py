"""The memory's system of record in Firestore: one document per entry, whatever made it
(backfilled history, a classified ticket, a correction), with its text, labels, who gave
them, its tenant and the embedding model that indexed it. Chroma is an index of these
documents; ``triage rebuild`` builds it again from them.

Writes are upserts by (tenant, ticket id), so every delivery and every backfill run may
repeat them. A correction relabels the entry and the entries answered from it, as the
index does. This module must never decide what to remember: that is the use cases'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..domain import Labels, LabelSource, MemoryEntry, follows_correction
from ..errors import StoreUnavailable
from .translate import translated

BATCH = 400  # writes per commit (Firestore allows 500)
PAGE = 500
Sources = frozenset[LabelSource]
RELABEL_TRIES = 5  # a guarded relabel re-read after the entry changed under it
_CAUGHT = (google_exceptions.GoogleAPIError, TimeoutError)
_LOST_RACE = (google_exceptions.FailedPrecondition, google_exceptions.Aborted)  # a guarded write's entry changed


def _translated(what: str) -> Any:
    return translated("Firestore", what, StoreUnavailable, catch=_CAUGHT)


def document_id(tenant: str, ticket_id: str) -> str:
    return hashlib.sha256(f"{tenant}\0{ticket_id}".encode()).hexdigest()[:40]


def to_document(entry: MemoryEntry, model: str, now: datetime) -> dict[str, Any]:
    return {
        "tenant": entry.tenant,
        "ticket_id": entry.ticket_id,
        "text": entry.text,
        "labels": entry.labels.as_dict(),
        "label_source": entry.label_source.value,
        "source_ticket_id": entry.source_ticket_id,
        "model": model,
        "updated_at": now,
    }


def from_document(document: dict[str, Any]) -> MemoryEntry:
    return MemoryEntry(
        ticket_id=document["ticket_id"],
        tenant=document["tenant"],
        embedding=(),
        text=document.get("text") or "",
        labels=Labels(**document["labels"]),
        label_source=LabelSource(document["label_source"]),
        source_ticket_id=document.get("source_ticket_id"),
    )


class FirestoreMemoryRecords:
    def __init__(self, client: firestore.Client, collection: str, *, timeout_seconds: float = 30.0):
        self._client = client
        self._entries = client.collection(collection)
        # One document per tenant that has a memory: what a whole rebuild walks.
        self._tenants = client.collection(f"{collection}_tenants")
        self._timeout = timeout_seconds
        self._retry = Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout_seconds)

    def put(self, entries: Sequence[MemoryEntry], *, model: str) -> None:
        """Insert or replace these entries, and note their tenants: one commit for a few (the
        worker's one entry per ticket), a bulk writer for a backfill's chunk."""
        now = datetime.now(UTC)
        writes = [
            (self._tenants.document(document_id(tenant, "")), {"tenant": tenant, "updated_at": now})
            for tenant in sorted({e.tenant for e in entries})
        ]
        writes += [
            (self._entries.document(document_id(e.tenant, e.ticket_id)), to_document(e, model, now)) for e in entries
        ]
        if len(writes) <= BATCH:
            batch = self._client.batch()
            for reference, document in writes:
                batch.set(reference, document, merge=reference.parent.id == self._tenants.id)
            with _translated("write"):
                batch.commit(retry=self._retry, timeout=self._timeout)
            return
        failed: list[str] = []

        def give_up(failure: Any, _: Any) -> bool:
            if failure.attempts < 5:
                return True
            failed.append(f"{failure.operation.reference.id}: {failure.message}")
            return False

        writer = self._client.bulk_writer()
        writer.on_write_error(give_up)
        with _translated("bulk write"):
            for reference, document in writes:
                writer.set(reference, document)
            writer.close()  # waits for every write
        if failed:
            raise StoreUnavailable(f"Firestore bulk write failed for {len(failed)} entries, e.g. {failed[0]}")

    def get(self, ticket_id: str, *, tenant: str) -> MemoryEntry | None:
        with _translated("read"):
            snapshot = self._entries.document(document_id(tenant, ticket_id)).get(
                retry=self._retry, timeout=self._timeout
            )
        return from_document(snapshot.to_dict()) if snapshot.exists else None

    def known(self, ticket_ids: Sequence[str], *, tenant: str) -> set[str]:
        if not ticket_ids:
            return set()
        references = [self._entries.document(document_id(tenant, t)) for t in ticket_ids]
        with _translated("read"):
            return {s.get("ticket_id") for s in self._client.get_all(references, field_paths=["ticket_id"]) if s.exists}

    def relabel(
        self,
        ticket_id: str,
        *,
        tenant: str,
        labels: Labels,
        label_source: LabelSource,
        over: frozenset[LabelSource] | None = None,
    ) -> bool:
        """The entry's new labels, and the same for the entries answered from it (unless a human
        verified them); False if there is no such entry, or (``over``) its labels come from another
        source. With ``over`` the write holds only if the entry is unchanged since it was read, so a
        reviewer's relabel in between is never overwritten (the next try reads it and stops)."""
        for _ in range(RELABEL_TRIES):
            try:
                return self._relabel(ticket_id, tenant, labels, label_source, over)
            except _LOST_RACE:
                continue  # changed since it was read: read it again
        raise StoreUnavailable(f"memory entry {ticket_id} kept changing while being relabelled")

    def _relabel(
        self, ticket_id: str, tenant: str, labels: Labels, label_source: LabelSource, over: Sources | None
    ) -> bool:
        reference = self._entries.document(document_id(tenant, ticket_id))
        now = datetime.now(UTC)
        with translated("Firestore", "relabel", StoreUnavailable, catch=_CAUGHT, keep=_LOST_RACE):
            snapshot = reference.get(field_paths=["label_source"], timeout=self._timeout)
            if not snapshot.exists:
                return False
            option = None
            if over is not None:
                if LabelSource(snapshot.get("label_source")) not in over:
                    return False
                option = self._client.write_option(last_update_time=snapshot.update_time)
            batch = self._client.batch()
            batch.update(
                reference,
                {"labels": labels.as_dict(), "label_source": label_source.value, "updated_at": now},
                option=option,
            )
            query = self._entries.where(filter=FieldFilter("tenant", "==", tenant)).where(
                filter=FieldFilter("source_ticket_id", "==", ticket_id)
            )
            for follower in query.stream(retry=self._retry, timeout=self._timeout):
                if follows_correction(LabelSource(follower.get("label_source"))):
                    memory = LabelSource.MEMORY.value
                    batch.update(
                        follower.reference, {"labels": labels.as_dict(), "label_source": memory, "updated_at": now}
                    )
            batch.commit(retry=self._retry, timeout=self._timeout)
        return True

    def has_entries(self, tenant: str) -> bool:
        query = self._entries.where(filter=FieldFilter("tenant", "==", tenant)).limit(1)
        with _translated("query"):
            return any(True for _ in query.stream(retry=self._retry, timeout=self._timeout))

    def count(self, tenant: str | None = None) -> int:
        query: Any = self._entries
        if tenant is not None:
            query = query.where(filter=FieldFilter("tenant", "==", tenant))
        with _translated("count"):
            return int(query.count(alias="n").get(retry=self._retry, timeout=self._timeout)[0][0].value)

    def tenants(self) -> list[str]:
        with _translated("query"):
            return sorted(str(s.get("tenant")) for s in self._tenants.stream(retry=self._retry, timeout=self._timeout))

    def scan(
        self, tenant: str, *, after: str | None = None, since: datetime | None = None
    ) -> Iterator[tuple[str, MemoryEntry]]:
        """Every entry of a tenant, in document order, from just after the document ``after``:
        (document id, entry) pairs, so a reader can note where it stopped and resume there.
        ``since``: only the entries written at or after it (a few: one query, in no set order)."""
        if since is not None:
            query = self._entries.where(filter=FieldFilter("tenant", "==", tenant))
            query = query.where(filter=FieldFilter("updated_at", ">=", since))
            with _translated("query"):
                yield from (
                    (s.id, from_document(s.to_dict())) for s in query.stream(retry=self._retry, timeout=self._timeout)
                )
            return
        while True:
            query = self._entries.where(filter=FieldFilter("tenant", "==", tenant)).order_by("__name__").limit(PAGE)
            if after is not None:
                query = query.start_after({"__name__": self._entries.document(after)})
            with _translated("query"):
                page = list(query.stream(retry=self._retry, timeout=self._timeout))
            for snapshot in page:
                yield snapshot.id, from_document(snapshot.to_dict())
            if len(page) < PAGE:
                return
            after = page[-1].id
