"""Backfill throughput against the raw encode of the same texts, in the same run.

    .venv/bin/python tests/benchmarks/backfill.py [--data ../shared/data] [--rows 3805]

Measures the embedder's own ``encode`` of the file's texts at batch 64 (the raw ceiling; the
embedder is the one EMBEDDING_BACKEND=auto picks, as `triage backfill` does),
then ``triage.backfill`` of the same file into a fresh memory, the engine's own: every entry
recorded in Firestore (a bulk writer) and indexed in the tenant's Chroma collection (read,
check, skip known ids, embed, write while the next chunk embeds), then the same backfill
again (everything already there: the resume path). Prints texts/s and the ratio. On its own
it starts the Firestore emulator and a Chroma server (the Pub/Sub emulator with them);
``make bench`` runs it on its stack.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from emulators.stack import LocalStack, StackConfig, free_port  # noqa: E402
from triage.adapters.chroma import ChromaIndex  # noqa: E402
from triage.adapters.durable_memory import DurableMemory  # noqa: E402
from triage.adapters.embedder import build_embedder  # noqa: E402
from triage.adapters.firestore_memory import FirestoreMemoryRecords  # noqa: E402
from triage.config import load_taxonomy  # noqa: E402
from triage.domain import Taxonomy  # noqa: E402
from triage.offline.backfill import backfill  # noqa: E402
from triage.offline.datasets import Columns, LabelledRow, labelled_rows  # noqa: E402

IT_COLUMNS = Columns(title="Document", category="Topic_group")


def it_set(data: Path) -> tuple[Path, Taxonomy, list[LabelledRow]]:
    """The shared IT set (its file, taxonomy and well-formed rows), as the benchmarks read it."""
    path = data / "tickets" / "it_service_tickets_v3_subset.csv"
    taxonomy = load_taxonomy(ROOT / "tests" / "data" / "it_service_taxonomy.json")
    rows = labelled_rows(path, IT_COLUMNS, taxonomy=taxonomy, max_chars=4000)
    return path, taxonomy, [row for row in rows if isinstance(row, LabelledRow)]


def measure(data: Path, rows_wanted: int | None, *, project: str, chroma_url: str) -> dict:
    """Raw batched encode, then backfill and its re-run, on the same texts; the figures. The
    Firestore emulator is the one FIRESTORE_EMULATOR_HOST names."""
    from google.cloud import firestore

    path, taxonomy, rows = it_set(data)
    if rows_wanted:
        rows = rows[:rows_wanted]
        subset = Path(tempfile.mkdtemp()) / "subset.csv"
        with subset.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Document", "Topic_group"])
            writer.writerows([r.text, r.labels.category] for r in rows)
        path = subset
    texts = [r.text for r in rows]

    embedder = build_embedder("auto", "all-MiniLM-L6-v2")  # as the worker and `triage backfill` embed
    embedder.encode(texts[:64])  # warm up
    started = time.perf_counter()
    embedder.encode(texts)  # batches of 64
    raw = len(texts) / (time.perf_counter() - started)

    chroma = urllib.parse.urlsplit(chroma_url)
    run = uuid.uuid4().hex[:8]
    index = ChromaIndex.connect(
        host=chroma.hostname or "127.0.0.1",
        port=chroma.port or 8000,
        ssl=False,
        token=None,
        tenant="default_tenant",
        database="default_database",
        collection=f"backfill-bench-{run}",
        embedding_model=embedder.name,
        model_version=embedder.version,
    )
    records = FirestoreMemoryRecords(firestore.Client(project=project), f"backfill-bench-{run}")
    memory = DurableMemory(records, index)

    def load() -> object:
        return backfill(
            labelled_rows(path, IT_COLUMNS, taxonomy=taxonomy, max_chars=4000),
            embedder=embedder,
            memory=memory,
            tenant="bench",
        )

    first = load()
    again = load()
    return {
        "texts": len(texts),
        "raw_encode_texts_per_second": round(raw, 1),
        "backfill_texts_per_second": round(first.texts_per_second, 1),
        "ratio_vs_raw_encode": round(first.texts_per_second / raw, 3),
        "backfill": first.as_dict(),
        "rerun": again.as_dict(),
        "embedding_seconds": round(first.embedded_seconds, 2),
        "recorded": records.count("bench"),
        "indexed": index.count("bench"),
        "file": path.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--rows", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    arguments = parser.parse_args()
    config = StackConfig(
        project="triage-bench-backfill",
        firestore_port=free_port(),
        pubsub_port=free_port(),
        chroma_port=free_port(),
        workdir=Path(tempfile.mkdtemp(prefix="triage-bench-backfill-")),
    )
    with LocalStack(config) as stack:
        stack.start_infrastructure()
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
        figures = measure(arguments.data, arguments.rows, project=config.project, chroma_url=stack.chroma_url)
    raw, texts, path = figures["raw_encode_texts_per_second"], figures["texts"], figures["file"]
    first, again = figures["backfill"], figures["rerun"]
    print(f"\nBackfill of {texts:,} tickets from {path}; {os.cpu_count()} CPUs\n")
    print("| measure | texts/s | ratio |")
    print("|---|---|---|")
    print(f"| raw encode, batch 64 | {raw:,.0f} | 1.00 |")
    rate = figures["backfill_texts_per_second"]
    print(f"| triage backfill (Firestore record + Chroma index) | {rate:,.0f} | {rate / raw:.2f} |")
    print(f"embedding {figures['embedding_seconds']:.1f}s of {first['seconds']:.1f}s")
    print(
        f"\nloaded {first['loaded']:,}, skipped {first['skipped']:,}; "
        f"re-run: loaded {again['loaded']:,}, skipped {again['skipped']:,} in {again['seconds']:.1f}s; "
        f"{figures['recorded']:,} entries recorded, {figures['indexed']:,} indexed"
    )
    if arguments.output:
        arguments.output.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
