"""Cold start of each function, as a new instance pays it: a fresh interpreter imports
``functions/main.py`` for its function (FUNCTION_TARGET), which prepares the instance (settings,
client libraries and model code imported: ``bootstrap.start_instance``), then (worker) loads the
embedding model and embeds one text, as the serving process does before its first request.
The worker is measured on its ONNX embedder (``make model``) and, as the baseline, on
sentence-transformers (EMBEDDING_BACKEND=sentence-transformers).

    .venv/bin/python tests/benchmarks/cold_start.py [--runs 3]

Prints seconds per phase and peak RSS per function; the README's deploy section and the
worker's memory size in infra/functions.tf come from these figures. The connections the
serving process also opens (Firestore, Pub/Sub, Chroma) need the emulators: ``make bench``
times a fresh stack's first request instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Each function as deployed; and the worker on sentence-transformers (torch) as the baseline its
# ONNX Runtime embedder is measured against.
TARGETS = {
    "api": ("api", {}),
    "worker": ("process_ticket", {"EMBEDDING_BACKEND": "onnx"}),
    "worker-torch": ("process_ticket", {"EMBEDDING_BACKEND": "sentence-transformers"}),
}

PROBE = r"""
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, "functions")
import main  # noqa: F401  (the entry points, as functions-framework imports them: start_instance runs)
from triage import bootstrap
imported = time.perf_counter()
phases = {"import_and_prepare_s": imported - started}
if sys.argv[1].startswith("worker"):
    bootstrap.embedder().embed(["warm up"])
    phases["model_load_and_first_embed_s"] = time.perf_counter() - imported
phases["total_s"] = time.perf_counter() - started
# VmHWM, not getrusage's ru_maxrss: that one survives exec, so it would report the parent's peak.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
phases["peak_rss_mib"] = int(peak.split()[1]) / 1024
print(json.dumps(phases))
"""


def measure(function: str) -> dict[str, float]:
    target, settings = TARGETS[function]
    environment = {**os.environ, "FUNCTION_TARGET": target, "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING", **settings}
    output = subprocess.run(
        [sys.executable, "-c", PROBE, function], cwd=ROOT, check=True, capture_output=True, text=True, env=environment
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def median_of(function: str, runs: int) -> dict[str, float]:
    measured = [measure(function) for _ in range(runs)]
    return {key: round(statistics.median(run[key] for run in measured), 3) for key in measured[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per function (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args()
    results = {function: median_of(function, arguments.runs) for function in TARGETS}
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"cold start, median of {arguments.runs} fresh processes")
    for function, figures in results.items():
        print(f"  {function:7s} " + "  ".join(f"{key} {value:.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
