"""The ONNX embedder's quality gate: on a labelled set, each ticket's 10 nearest neighbours (exact
cosine, itself excluded) under the ONNX export against those under sentence-transformers (torch).

    .venv/bin/python tests/benchmarks/embedder_gate.py [--data ../shared/data] [--json]

The ONNX embedder is kept only while the same ticket sits at the same rank in >= 99 % of the
positions; ``triage evaluate`` with EMBEDDING_BACKEND=onnx and =sentence-transformers gives the other
half of the gate (its figures within 0.5 points). Also prints the encode time of each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.benchmarks.backfill import it_set  # noqa: E402
from triage.adapters.embedder import build_embedder  # noqa: E402

K = 10


def neighbours(vectors):  # numpy arrays in, indices out
    import numpy as np

    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :K]


def measure(data: Path) -> dict:
    import numpy as np

    path, _, rows = it_set(data)
    texts = [row.text for row in rows]
    found: dict = {"set": path.name, "tickets": len(texts), "k": K}
    vectors = {}
    for backend in ("onnx", "sentence-transformers"):
        embedder = build_embedder(backend, "all-MiniLM-L6-v2")
        embedder.encode(texts[:64])  # loaded and warm
        started = time.perf_counter()
        vectors[backend] = np.asarray(embedder.encode(texts), dtype=np.float64)
        found[f"{backend}_texts_per_second"] = round(len(texts) / (time.perf_counter() - started), 1)
    onnx, torch = neighbours(vectors["onnx"]), neighbours(vectors["sentence-transformers"])
    found["same_ticket_same_rank_share"] = round(float((onnx == torch).mean()), 6)
    overlap = [len(set(a) & set(b)) / K for a, b in zip(onnx, torch, strict=True)]
    found["same_set_share"] = round(float(np.mean(overlap)), 6)
    found["max_abs_component_difference"] = float(np.abs(vectors["onnx"] - vectors["sentence-transformers"]).max())
    found["passes"] = found["same_ticket_same_rank_share"] >= 0.99
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    found = measure(arguments.data)
    print(json.dumps(found, indent=None if arguments.json else 1))
    if not found["passes"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
