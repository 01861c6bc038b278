"""Load historical labelled tickets into the memory.

Idempotent by id and therefore resumable: rows whose id the memory already holds
are skipped without embedding them, so a run interrupted anywhere is finished by
running it again. Embedding (CPU) and upserting (network) overlap: one chunk is
written while the next is embedded.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from ..domain import LabelSource, MemoryEntry
from ..ports import Embedder, Memory
from .datasets import LabelledRow, Rejection


@dataclasses.dataclass
class BackfillReport:
    loaded: int = 0
    skipped: int = 0
    rejected: Counter = dataclasses.field(default_factory=Counter)
    embedded_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def texts_per_second(self) -> float:
        return self.loaded / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "loaded": self.loaded,
            "skipped": self.skipped,
            "rejected": self.rejected_total,
            "rejected_reasons": dict(self.rejected.most_common()),
            "seconds": round(self.seconds, 2),
            "texts_per_second": round(self.texts_per_second, 1),
        }


def _reason_kind(reason: str) -> str:
    # "category 'X' is not in the taxonomy" and "same text as line 12" group by kind.
    if reason.startswith("same "):
        return reason.split(" as line")[0]
    return reason


def backfill(
    rows: Iterable[LabelledRow | Rejection],
    *,
    embedder: Embedder,
    memory: Memory,
    tenant: str,
    chunk_size: int = 2048,
    progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    report = BackfillReport()
    started = time.perf_counter()
    pending: Future | None = None
    chunk: list[LabelledRow] = []

    def write(entries: list[MemoryEntry]) -> None:
        memory.remember(*entries)

    def flush(executor: ThreadPoolExecutor) -> Future | None:
        nonlocal pending
        known = memory.known([row.row_id for row in chunk])
        fresh = [row for row in chunk if row.row_id not in known]
        report.skipped += len(chunk) - len(fresh)
        if fresh:
            embed_started = time.perf_counter()
            vectors = embedder.embed([row.text for row in fresh])
            report.embedded_seconds += time.perf_counter() - embed_started
            entries = [
                MemoryEntry(row.row_id, tenant, vector, row.text, row.labels, LabelSource.IMPORTED)
                for row, vector in zip(fresh, vectors, strict=True)
            ]
            if pending is not None:
                pending.result()  # one write in flight at most; its errors surface here
            pending = executor.submit(write, entries)
            report.loaded += len(entries)
        if progress:
            progress(len(chunk))
        chunk.clear()
        return pending

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-write") as executor:
        for row in rows:
            if isinstance(row, Rejection):
                report.rejected[_reason_kind(row.reason)] += 1
                if progress:
                    progress(1)
                continue
            chunk.append(row)
            if len(chunk) >= chunk_size:
                flush(executor)
        if chunk:
            flush(executor)
        if pending is not None:
            pending.result()
    report.seconds = time.perf_counter() - started
    return report
