"""The memory the use cases see (``ports.Memory``): entries recorded in Firestore, looked up
in a Chroma index.

Every entry is written to the record first, then to the index, so nothing the engine learned
is ever only in Chroma. A lookup never answers from a partial index: when a tenant's entries
are on record but its index is gone or empty (a Chroma that lost its disk), the lookup raises
MemoryIndexMissing, so no ticket is answered from memory, and new entries are still recorded
(not indexed) until ``triage rebuild`` builds the index again. The state of each tenant's
index is checked at most every ``check_seconds``, and at once after the index failed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..domain import Labels, LabelSource, MemoryEntry, Neighbour
from ..errors import MemoryIndexMissing, MemoryUnavailable
from .chroma import ChromaIndex
from .firestore_memory import FirestoreMemoryRecords

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IndexState:
    recorded: bool  # Firestore holds entries of the tenant
    indexed: bool  # Chroma has a collection for it, with entries

    @property
    def missing(self) -> bool:
        return self.recorded and not self.indexed


class DurableMemory:
    def __init__(
        self,
        records: FirestoreMemoryRecords,
        index: ChromaIndex,
        *,
        check_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.records = records
        self.index = index
        self._check_seconds = check_seconds
        self._clock = clock
        self._states: dict[str, tuple[float, IndexState]] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.index.model

    def state(self, tenant: str) -> IndexState:
        with self._lock:
            cached = self._states.get(tenant)
            if cached is not None and self._clock() - cached[0] < self._check_seconds:
                return cached[1]
        count = self._count(tenant)
        state = IndexState(recorded=self.records.has_entries(tenant), indexed=bool(count))
        if state.missing:
            log.error(
                "memory index missing: no answers from memory for this tenant until `triage rebuild`",
                extra={"tenant": tenant, "collection_entries": count},
            )
        with self._lock:
            self._states[tenant] = (self._clock(), state)
        return state

    def _count(self, tenant: str) -> int | None:
        """Entries in the tenant's index (None: no index); a handle to a collection the server no
        longer has (it restarted empty) is dropped and the server asked again."""
        try:
            return self.index.count(tenant)
        except MemoryUnavailable:
            self.index.forget(tenant)
            return self.index.count(tenant)

    def _forget(self, tenant: str) -> None:
        with self._lock:
            self._states.pop(tenant, None)
        self.index.forget(tenant)

    def _indexing(self, tenant: str, action: Callable[[], Any]) -> Any:
        """Run an index call; when it fails, look at the tenant's index again next time."""
        try:
            return action()
        except MemoryUnavailable:
            self._forget(tenant)
            raise

    # ------------------------------------------------------------------ the Memory port

    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]:
        if self.state(tenant).missing:
            raise MemoryIndexMissing(
                f"the memory index of tenant {tenant!r} is missing or empty while Firestore holds its entries: "
                f"no answers from memory until `triage rebuild --tenant {tenant}`"
            )
        found = self._indexing(tenant, lambda: self.index.nearest(embedding, tenant=tenant, limit=limit))
        if not found and self.state(tenant).recorded and self._count(tenant) is None:
            self._forget(tenant)  # the collection vanished under a state thought ready
            return self.nearest(embedding, tenant=tenant, limit=limit)
        return found

    def remember(self, *entries: MemoryEntry) -> None:
        by_tenant: dict[str, list[MemoryEntry]] = defaultdict(list)
        for entry in entries:
            by_tenant[entry.tenant].append(entry)
        # A tenant with nothing on record yet is new: its index may be created. Otherwise an
        # absent index is a lost one, and creating an empty one would answer from a partial memory.
        new = {tenant for tenant in by_tenant if not self.state(tenant).recorded}
        self.records.put(entries, model=self.model)
        for tenant, group in by_tenant.items():
            written = self._indexing(tenant, lambda t=tenant, g=group: self.index.upsert(t, g, create=t in new))
            if tenant in new:
                self._forget(tenant)  # it is on record now: look again
            elif not written:
                log.error("memory index missing: entry recorded, not indexed", extra={"tenant": tenant})

    def known(self, ticket_ids: Sequence[str], *, tenant: str) -> set[str]:
        """Ids both on record and indexed: anything less is written again by a backfill."""
        recorded = self.records.known(ticket_ids, tenant=tenant)
        return recorded & self.index.known(list(recorded), tenant=tenant)

    def entries(self, tenant: str) -> Iterator[MemoryEntry]:
        yield from self.index.entries(tenant)

    def relabel(
        self,
        ticket_id: str,
        *,
        tenant: str,
        labels: Labels,
        label_source: LabelSource,
        over: frozenset[LabelSource] | None = None,
    ) -> bool:
        """True when the entry is relabelled on record and in the index; False when either lacks it
        (then the caller remembers it whole: the worker's ``remember`` writes both again), or when
        (``over``) the record's labels come from another source: the record decides, the index follows."""
        if not self.records.relabel(ticket_id, tenant=tenant, labels=labels, label_source=label_source, over=over):
            return False
        return bool(
            self._indexing(
                tenant,
                lambda: self.index.relabel(
                    ticket_id, tenant=tenant, labels=labels, label_source=label_source, over=over
                ),  # guarded too: a reviewer's relabel that reached the index first stays
            )
        )

    def health(self) -> dict[str, Any]:
        """Each tenant on record: entries on record, entries indexed, and whether the index is missing."""
        tenants = {}
        for tenant in self.records.tenants():
            indexed = self._count(tenant)
            recorded = self.records.count(tenant)
            tenants[tenant] = {
                "recorded": recorded,
                "indexed": indexed or 0,
                "index_missing": recorded > 0 and not indexed,
            }
        return tenants
