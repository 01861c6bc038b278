"""Cold start of each function, as a new instance pays it: a fresh interpreter imports
``functions/main.py``, then (worker) loads the embedding model and embeds one text.

    .venv/bin/python tests/benchmarks/cold_start.py [--runs 3]

Prints seconds per phase and peak RSS per function; the README's deploy section and the
worker's memory size in infra/functions.tf come from these figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, resource, sys, time
started = time.perf_counter()
sys.path.insert(0, "functions")
import main  # noqa: F401  (the entry points, as functions-framework imports them)
from triage import bootstrap
imported = time.perf_counter()
phases = {"import_s": imported - started}
if sys.argv[1] == "worker":
    bootstrap.embedder().embed(["warm up"])
    phases["model_load_and_first_embed_s"] = time.perf_counter() - imported
phases["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(phases))
"""


def measure(function: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-c", PROBE, function], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per function (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args()
    results = {}
    for function in ("api", "worker"):
        runs = [measure(function) for _ in range(arguments.runs)]
        results[function] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"cold start, median of {arguments.runs} fresh processes")
    for function, figures in results.items():
        print(f"  {function:7s} " + "  ".join(f"{key} {value:.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
