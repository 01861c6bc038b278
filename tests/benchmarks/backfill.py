"""Backfill throughput against raw ``model.encode`` on the same texts, in the same run.

    .venv/bin/python tests/benchmarks/backfill.py [--data ../shared/data] [--rows 3805]

Starts a Chroma server, measures ``SentenceTransformer.encode`` of the file's texts at
batch 64 (the raw ceiling), then ``triage.backfill`` of the same file into a fresh
collection (read, check, skip known ids, embed, upsert), then the same backfill again
(everything already there: the resume path). Prints texts/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from emulators.stack import ManagedProcess, free_port, http_status, venv_bin  # noqa: E402
from triage.adapters.chroma import ChromaMemory  # noqa: E402
from triage.adapters.embedder import SentenceTransformerEmbedder  # noqa: E402
from triage.config import load_taxonomy  # noqa: E402
from triage.offline.backfill import backfill  # noqa: E402
from triage.offline.datasets import Columns, LabelledRow, labelled_rows  # noqa: E402


def measure(data: Path, rows_wanted: int | None = None) -> dict:
    """Raw batched encode, then backfill and its re-run, on the same texts; the figures."""
    path = data / "tickets" / "it_service_tickets_v3_subset.csv"
    taxonomy = load_taxonomy(ROOT / "tests" / "data" / "it_service_taxonomy.json")
    columns = Columns(title="Document", category="Topic_group")
    rows = [r for r in labelled_rows(path, columns, taxonomy=taxonomy, max_chars=4000) if isinstance(r, LabelledRow)]
    if rows_wanted:
        rows = rows[:rows_wanted]
        subset = Path(tempfile.mkdtemp()) / "subset.csv"
        import csv

        with subset.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Document", "Topic_group"])
            writer.writerows([r.text, r.labels.category] for r in rows)
        path = subset
    texts = [r.text for r in rows]

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    model = embedder.load()
    model.encode(texts[:64], batch_size=64)  # warm up
    started = time.perf_counter()
    model.encode(texts, batch_size=64)
    raw = len(texts) / (time.perf_counter() - started)

    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-backfill-"))
    port = free_port()
    chroma = ManagedProcess(
        "chroma",
        [
            str(venv_bin("chroma", ROOT / ".venv-chroma")),
            "run",
            "--path",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        workdir / "chroma.log",
        lambda: http_status(f"http://127.0.0.1:{port}/api/v2/heartbeat") == 200,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    chroma.start(60)
    try:
        memory = ChromaMemory.connect(
            host="127.0.0.1",
            port=port,
            ssl=False,
            token=None,
            tenant="default_tenant",
            database="default_database",
            collection="backfill-bench",
            embedding_model=embedder.name,
            model_version=embedder.version,
        )
        first = backfill(
            labelled_rows(path, columns, taxonomy=taxonomy, max_chars=4000),
            embedder=embedder,
            memory=memory,
            tenant="bench",
        )
        again = backfill(
            labelled_rows(path, columns, taxonomy=taxonomy, max_chars=4000),
            embedder=embedder,
            memory=memory,
            tenant="bench",
        )
        stored = memory.count()
    finally:
        chroma.stop()

    figures = {
        "texts": len(texts),
        "raw_encode_texts_per_second": round(raw, 1),
        "backfill_texts_per_second": round(first.texts_per_second, 1),
        "ratio": round(first.texts_per_second / raw, 3),
        "backfill": first.as_dict(),
        "rerun": again.as_dict(),
        "embedding_seconds": round(first.embedded_seconds, 2),
        "stored": stored,
        "file": path.name,
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--rows", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    arguments = parser.parse_args()
    figures = measure(arguments.data, arguments.rows)
    raw, texts, path = figures["raw_encode_texts_per_second"], figures["texts"], figures["file"]
    first, again, stored = figures["backfill"], figures["rerun"], figures["stored"]
    print(f"\nBackfill of {texts:,} tickets from {path}; {os.cpu_count()} CPUs\n")
    print("| measure | texts/s | ratio |")
    print("|---|---|---|")
    print(f"| raw model.encode, batch 64 | {raw:,.0f} | 1.00 |")
    rate = figures["backfill_texts_per_second"]
    print(f"| triage backfill into Chroma | {rate:,.0f} | {rate / raw:.2f} |")
    print(f"embedding {figures['embedding_seconds']:.1f}s of {first['seconds']:.1f}s")
    print(
        f"\nloaded {first['loaded']:,}, skipped {first['skipped']:,}; "
        f"re-run: loaded {again['loaded']:,}, skipped {again['skipped']:,} in {again['seconds']:.1f}s; "
        f"{stored:,} entries stored"
    )
    if arguments.output:
        arguments.output.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
