"""Load historical labelled tickets into the memory (Firestore's record, then Chroma's index).

Idempotent by id and therefore resumable: rows whose id the memory already holds
are skipped without embedding them, so a run interrupted anywhere is finished by
running it again. Embedding (CPU) and writing (network) overlap: one chunk is
written while the next is embedded. A large history is split into shards that run in
parallel (a Cloud Run job's tasks): each row belongs to exactly one shard, by a hash of
its id, so N shards load exactly what one run loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from ..domain import LabelSource, MemoryEntry
from ..ports import Embedder, Memory
from .datasets import LabelledRow, Rejection
from .write_behind import WriteBehind


@dataclasses.dataclass
class BackfillReport:
    loaded: int = 0
    skipped: int = 0
    other_shards: int = 0  # rows another shard loads
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
            "other_shards": self.other_shards,
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


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the rows whose id hashes to it."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be in 0..{self.count - 1}")

    @classmethod
    def parse(cls, spec: str, environment: Mapping[str, str]) -> Shard:
        """``I/N``, or ``auto``: a Cloud Run job task's CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT."""
        if spec == "auto":
            index, count = environment.get("CLOUD_RUN_TASK_INDEX", "0"), environment.get("CLOUD_RUN_TASK_COUNT", "1")
        else:
            index, _, count = spec.partition("/")
        if not (index.isdigit() and count.isdigit() and int(count) > 0):
            raise ValueError(f"a shard is I/N with whole numbers and N > 0 (e.g. 0/4), or auto; not {spec!r}")
        return cls(int(index), int(count))

    def holds(self, row_id: str) -> bool:
        return int(hashlib.sha256(row_id.encode()).hexdigest()[:12], 16) % self.count == self.index


def backfill(
    rows: Iterable[LabelledRow | Rejection],
    *,
    embedder: Embedder,
    memory: Memory,
    tenant: str,
    chunk_size: int = 2048,
    progress: Callable[[int], None] | None = None,
    shard: Shard = Shard(),
) -> BackfillReport:
    report = BackfillReport()
    started = time.perf_counter()
    chunk: list[LabelledRow] = []

    def flush(writer: WriteBehind) -> None:
        known = memory.known([row.row_id for row in chunk], tenant=tenant)
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
            writer.submit(memory.remember, *entries)  # one write in flight at most; its errors surface here
            report.loaded += len(entries)
        if progress:
            progress(len(chunk))
        chunk.clear()

    with WriteBehind("backfill-write") as writer:
        for row in rows:
            if isinstance(row, Rejection):
                report.rejected[_reason_kind(row.reason)] += 1
                if progress:
                    progress(1)
                continue
            if not shard.holds(row.row_id):
                report.other_shards += 1
                if progress:
                    progress(1)
                continue
            chunk.append(row)
            if len(chunk) >= chunk_size:
                flush(writer)
        if chunk:
            flush(writer)
    report.seconds = time.perf_counter() - started
    return report
