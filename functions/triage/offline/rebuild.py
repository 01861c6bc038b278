"""Build the memory's Chroma index again from its record in Firestore (``triage rebuild``).

For each tenant, the entries on record are embedded with the configured model into a staging
collection beside the live one, which takes the live one's place only when complete: until
then the engine goes on with what it has (or, with the index lost, answers nothing from
memory). Resumable and idempotent: the staging collection survives an interrupted run, and
what it holds already is not embedded again. Entries recorded while the rebuild ran are
picked up by a last pass after the swap.

Also the way from the first version's single collection (every tenant in one collection,
filtered by a ``tenant`` field) to this one: ``import_collection`` puts its entries on record.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain import Labels, LabelSource, MemoryEntry
from ..errors import ConfigurationError
from ..ports import Embedder
from .write_behind import WriteBehind

Progress = Callable[[int], None]
CLOCK_MARGIN = timedelta(minutes=5)


@dataclasses.dataclass
class RebuildReport:
    entries: dict[str, int] = dataclasses.field(default_factory=dict)  # per tenant, in the new index
    embedded: int = 0  # entries embedded by this run (not already staged by an earlier one)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"tenants": len(self.entries), **dataclasses.asdict(self), "seconds": round(self.seconds, 1)}


def _batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fill(
    records: Any,
    index: Any,
    embedder: Embedder,
    tenant: str,
    batch_size: int,
    progress: Progress | None,
    since: datetime | None = None,
) -> int:
    """Stage every recorded entry of the tenant (written ``since``) that the staging collection
    lacks; how many were embedded. A batch is written while the next one is read and embedded
    (``WriteBehind``, as backfill does)."""
    embedded = 0
    with WriteBehind("rebuild-stage") as writer:
        for batch in _batches((entry for _, entry in records.scan(tenant, since=since)), batch_size):
            have = index.staged(tenant, [e.ticket_id for e in batch])
            missing = [e for e in batch if e.ticket_id not in have]
            if missing:
                writer.submit(index.stage, tenant, missing, embedder.embed([e.text for e in missing]))
                embedded += len(missing)
            if progress:
                progress(len(batch))
    return embedded


def rebuild(
    *,
    records: Any,
    index: Any,
    embedder: Embedder,
    tenants: Sequence[str] | None = None,
    batch_size: int = 1024,
    fresh: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild the index of ``tenants`` (default: every tenant on record)."""
    model = f"{embedder.name}@{embedder.version}"
    if model != index.model:
        raise ConfigurationError(f"the index is for embedding model {index.model}, the embedder is {model}")
    report = RebuildReport()
    started = time.perf_counter()
    for tenant in tenants or records.tenants():
        # Writers' clocks may run a little behind this one: a margin, at the cost of a few entries
        # looked at twice (what is staged or indexed already is not embedded again).
        began = datetime.now(UTC) - CLOCK_MARGIN
        index.staging(tenant, fresh=fresh)
        report.embedded += _fill(records, index, embedder, tenant, batch_size, progress)
        # Entries recorded while the first pass ran: a second pass over them, then the swap, then a
        # third on the live index for those recorded in between (the worker writes to the live one).
        report.embedded += _fill(records, index, embedder, tenant, batch_size, None, since=began)
        index.swap(tenant)
        for batch in _batches((entry for _, entry in records.scan(tenant, since=began)), batch_size):
            indexed = index.known([e.ticket_id for e in batch], tenant=tenant)
            late = [e for e in batch if e.ticket_id not in indexed]
            if late:
                vectors = embedder.embed([e.text for e in late])
                index.upsert(tenant, [dataclasses.replace(e, embedding=v) for e, v in zip(late, vectors, strict=True)])
                report.embedded += len(late)
        report.entries[tenant] = index.count(tenant) or 0
    report.seconds = time.perf_counter() - started
    return report


def import_collection(collection: Any, records: Any, *, model: str, batch_size: int = 1000) -> int:
    """Put every entry of a first-version Chroma collection (all tenants in one, a ``tenant``
    field on each) on record in Firestore. Returns how many."""
    total, offset = 0, 0
    while True:
        page = collection.get(include=["documents", "metadatas"], limit=batch_size, offset=offset)
        if not page["ids"]:
            return total
        entries = [
            MemoryEntry(
                ticket_id=ticket_id,
                tenant=str(metadata["tenant"]),
                embedding=(),
                text=document or "",
                labels=Labels(str(metadata["category"]), str(metadata["priority"]), str(metadata["assignment_group"])),
                label_source=LabelSource(metadata["label_source"]),
                source_ticket_id=metadata.get("source_ticket_id"),
            )
            for ticket_id, document, metadata in zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        ]
        records.put(entries, model=model)
        total += len(entries)
        offset += len(page["ids"])
