"""A memory lookup at scale: one tenant's collection of N synthetic entries (default 100,000),
queried through the engine's durable memory and, as the baseline, with a bare unfiltered
Chroma query of the same collection, interleaved so both see the same machine.

The entries are seeded random unit vectors (384 dimensions, the model's), which is enough to
time a lookup: an HNSW search's cost depends on the index, not on what the vectors mean. The
queries are stored vectors plus noise (a new ticket near old ones). Loading 100,000 entries
into a Chroma server takes minutes here (its HNSW inserts), so the server keeps its data in
``data_dir`` and a later run with the same size and seed reuses the collection (a marker file
says it was loaded whole; without it the folder is emptied and loaded again).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks.ingest_load import percentile

DIMENSIONS = 384
BATCH = 5000
TARGET_P50_MS = 10.0


def _chroma(data_dir: Path) -> Any:
    from emulators.stack import ROOT, ManagedProcess, free_port, http_status, venv_bin

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    process = ManagedProcess(
        "chroma-lookup",
        [
            str(venv_bin("chroma", ROOT / ".venv-chroma")),
            "run",
            "--path",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        data_dir.parent / "chroma-lookup.log",
        lambda: http_status(f"http://127.0.0.1:{port}/api/v2/heartbeat") == 200,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    process.start(120)
    return process, port


def vectors(count: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    found = generator.standard_normal((count, DIMENSIONS), dtype=np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def measure(entries: int, queries: int, data_dir: Path, project: str, seed: int = 0) -> dict[str, Any]:
    from google.cloud import firestore

    from triage.adapters.chroma import ChromaIndex
    from triage.adapters.durable_memory import DurableMemory
    from triage.adapters.firestore_memory import FirestoreMemoryRecords
    from triage.domain import Labels, LabelSource, MemoryEntry

    done = data_dir / f"loaded-{entries}-seed{seed}"
    reused = done.exists()
    if not reused:
        shutil.rmtree(data_dir, ignore_errors=True)
    process, port = _chroma(data_dir)
    try:
        index = ChromaIndex.connect(
            host="127.0.0.1", port=port, ssl=False, token=None, tenant="default_tenant",
            database="default_database", collection="bench-lookup", embedding_model="synthetic",
            model_version=f"seed{seed}",
        )  # fmt: skip
        tenant = f"synthetic-{entries}"
        stored = vectors(entries, seed)
        started = time.perf_counter()
        if not reused:
            labels = Labels("Network", "High", "Network Operations")
            for first in range(0, entries, BATCH):
                batch = stored[first : first + BATCH]
                index.upsert(
                    tenant,
                    [
                        MemoryEntry(f"s{first + i}", tenant, row, f"synthetic ticket {first + i}", labels,
                                    LabelSource.IMPORTED)
                        for i, row in enumerate(batch.tolist())
                    ],
                )  # fmt: skip
            if index.count(tenant) != entries:
                raise RuntimeError(f"the lookup collection holds {index.count(tenant)} entries, not {entries}")
            done.touch()
        load_seconds = time.perf_counter() - started
        memory = DurableMemory(FirestoreMemoryRecords(firestore.Client(project=project), "bench-lookup-records"), index)
        collection = index.collection(tenant)
        generator = np.random.default_rng(seed + 1)
        picks = stored[generator.integers(0, entries, queries)]
        asked = picks + generator.standard_normal(picks.shape, dtype=np.float32) * 0.05
        asked = (asked / np.linalg.norm(asked, axis=1, keepdims=True)).tolist()

        def engine(query: list[float]) -> list:
            return memory.nearest(query, tenant=tenant, limit=21)

        def unfiltered(query: list[float]) -> Any:
            return collection.query(
                query_embeddings=[query], n_results=21, include=["metadatas", "distances", "documents"]
            )

        for query in asked[:20]:  # the index into memory, connections open
            engine(query)
            unfiltered(query)
        timings: dict[str, list[float]] = {"engine": [], "unfiltered": []}
        for number, query in enumerate(asked):
            order = (("engine", engine), ("unfiltered", unfiltered))
            for name, call in order if number % 2 else order[::-1]:
                began = time.perf_counter()
                call(query)
                timings[name].append((time.perf_counter() - began) * 1000)
        nearest = engine(asked[0])
    finally:
        process.stop()
    result: dict[str, Any] = {
        "entries": entries,
        "queries": queries,
        "loaded_seconds": round(load_seconds, 1),
        "reused": reused,
        "neighbours": len(nearest),
        "target_p50_ms": TARGET_P50_MS,
    }
    for name, values in timings.items():
        result[name] = {"p50_ms": round(percentile(values, 50), 2), "p95_ms": round(percentile(values, 95), 2)}
    result["ratio_vs_unfiltered_query"] = round(result["engine"]["p50_ms"] / result["unfiltered"]["p50_ms"], 3)
    return result
