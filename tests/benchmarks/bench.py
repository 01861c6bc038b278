"""The benchmark: one command, one table, each figure next to a baseline from the same run.

    make bench            # = .venv/bin/python tests/benchmarks/bench.py [--data ../shared/data]

On the local stack (emulators, Chroma, API and worker under functions-framework):

* ingest, at ``--concurrency`` clients: requests/s and p50/p99 of ``POST /classify`` (store
  as Pending, publish, wait for Pub/Sub's acknowledgement) against (1) the same two
  primitives called straight from as many threads with the same client libraries, no HTTP
  (``ingest.ratio_vs_primitives``), and (2) a trivial functions-framework function that only
  parses the body, served the same way (``ingest.ratio_vs_trivial_function``);
* a fresh API's first ``POST /classify`` against its warm p50, one client at a time
  (``first_request.ratio_vs_warm_p50``);
* the worker on the memory path: tickets/s of a burst against the bound its own stages,
  timed in this run, set for one thread (``worker.ratio_vs_stage_bound``; see worker.py);
* POST-to-classified p50/p95 on the classifier path and on the memory path;
* a memory lookup in one tenant's collection of ``--lookup-entries`` (100,000) entries, through
  the engine against a bare unfiltered query of the same collection, and the 10 ms target
  (``lookup.ratio_vs_unfiltered_query``; see lookup.py);
* backfill texts/s against raw batched encode (``backfill.ratio_vs_raw_encode``);
* the worker's cold start (import and prepare, then model load and first embed) in fresh
  processes, and the peak RSS of every process.

Writes the table as Markdown and the figures as JSON (``--output-dir``, default
``bench-results/``); a ``benchmark.json`` already there is the previous run, shown in a
column of its own. The machine is shared: compare the ratios, each taken within one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from emulators import demo  # noqa: E402
from emulators.stack import (  # noqa: E402
    FUNCTIONS,
    LocalStack,
    ManagedProcess,
    StackConfig,
    free_port,
    http_status,
    rest,
    venv_bin,
)
from tests.benchmarks import backfill, cold_start, ingest_load, lookup, report, worker  # noqa: E402
from tests.benchmarks.ingest_load import percentile  # noqa: E402


def read_tickets(data: Path, count: int) -> list[dict[str, str]]:
    path = data / "tickets" / "it_service_tickets_v3_subset.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seen, tickets = set(), []
    for row in rows:
        words = row["Document"].split()
        title, description = " ".join(words[:8]), " ".join(words[8:])
        if title in seen or not title:
            continue
        seen.add(title)
        tickets.append({"title": title[:300], "description": description[:20_000]})
        if len(tickets) == count:
            break
    return tickets


def seconds_to_classified(ticket: dict) -> float:
    created = datetime.fromisoformat(ticket["created_at"])
    classified = datetime.fromisoformat(ticket["classification"]["classified_at"])
    return (classified - created).total_seconds()


def end_to_end(api: str, tickets: list[dict[str, str]]) -> list[dict]:
    """Submit one at a time and wait for each, so every figure is an unloaded latency."""
    done = []
    for ticket in tickets:
        status, body = demo.call("POST", f"{api}/classify", ticket)
        if status != 202:
            raise RuntimeError(f"POST /classify answered {status}: {body}")
        done.append(demo.wait_until_processed(api, body["ticket_id"], None, timeout=60))
    return done


def summarise(tickets: list[dict], path: str) -> dict[str, float]:
    on_path = [seconds_to_classified(t) * 1000 for t in tickets if (t.get("classification") or {}).get("path") == path]
    if not on_path:
        return {"tickets": 0}
    return {"tickets": len(on_path), "p50_ms": percentile(on_path, 50), "p95_ms": percentile(on_path, 95)}


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process and its descendants have used so far, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def memory_of(pid: int) -> dict[str, float]:
    """The largest peak RSS (VmHWM) in a process's tree, and the tree's proportional set size
    now (shared pages counted once, as a container's memory limit counts them), in MiB."""
    peak = pss = 0.0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return {"peak_rss_mib": round(peak, 1), "pss_mib": round(pss, 1)}


def serve(stack: LocalStack, name: str, target: str, source: Path, env: dict[str, str], workdir: Path) -> str:
    """Start a function under functions-framework the way the stack does; its URL once healthy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack._spawn(
        ManagedProcess(
            name,
            [str(venv_bin("functions-framework")), "--target", target, "--source", str(source),
             "--host", "127.0.0.1", "--port", str(port)],
            workdir / "logs" / f"bench-{name}.log",
            lambda: http_status(f"{url}/healthz") is not None,
            env={**os.environ, **env, "THREADS": str(stack.config.threads)},
            cwd=source.parent,
        ),
        timeout=120,
    )  # fmt: skip
    return url


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--requests", type=int, default=1000, help="ingest requests per measure (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent ingest clients (default 8)")
    parser.add_argument(
        "--ingest-rounds",
        type=int,
        default=4,
        help="interleaved rounds of the ingest loads that share the emulators (default 4)",
    )
    parser.add_argument("--sequential", type=int, default=100, help="one-client requests for the warm p50 (100)")
    parser.add_argument("--tickets", type=int, default=60, help="tickets per end-to-end path (default 60)")
    parser.add_argument("--burst", type=int, default=200, help="tickets in the worker's memory-path burst (200)")
    parser.add_argument("--stage-repeats", type=int, default=50, help="timings per worker stage (default 50)")
    parser.add_argument("--backfill-rows", type=int, default=1000, help="rows of the IT set to backfill (1000)")
    parser.add_argument("--lookup-entries", type=int, default=100_000, help="entries of the lookup test (0: skip)")
    parser.add_argument("--lookup-queries", type=int, default=200, help="lookups timed (default 200)")
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="fresh processes per cold start and per first request (default 3)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=ROOT / "bench-results", help="where benchmark.md and benchmark.json go"
    )
    return parser.parse_args()


def main() -> None:
    arguments = options()
    previous_file = arguments.output_dir / "benchmark.json"
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else None
    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    config = StackConfig(
        project="triage-bench",
        firestore_port=free_port(),
        pubsub_port=free_port(),
        chroma_port=free_port(),
        workdir=workdir,
        inherit_settings=False,
    )
    results: dict = {"machine": f"{os.cpu_count()} CPUs", "python": sys.version.split()[0], "options": {
        k: str(v) for k, v in vars(arguments).items()}}  # fmt: skip
    with LocalStack(config) as stack:
        stack.start_infrastructure()
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
        os.environ["PUBSUB_EMULATOR_HOST"] = stack.pubsub_host
        lane = stack.add_lane("default", env={"RATE_LIMIT_PER_MINUTE": "0"})
        tickets = read_tickets(arguments.data, max(arguments.requests, arguments.tickets))
        bodies = [json.dumps(tickets[i % len(tickets)]).encode() for i in range(arguments.requests)]
        # The first request of a fresh stack: the API instance is new, and so are the emulators
        # behind it (the Java emulators compile their write path on first use: production's
        # Firestore and Pub/Sub never pay that).
        first_of_stack_ms = ingest_load.first_request_ms(lane.api_url, bodies[-1])
        # The ingest API: same code and collection, its own topic with a subscription nobody reads.
        pubsub = f"http://{stack.pubsub_host}/v1/projects/{config.project}"
        rest(f"{pubsub}/topics/bench-ingest")
        sink = {"topic": f"projects/{config.project}/topics/bench-ingest"}
        rest(f"{pubsub}/subscriptions/bench-ingest-sink", payload=sink)
        ingest_env = {**lane.env, "TICKETS_TOPIC": "bench-ingest", "LOG_LEVEL": "WARNING"}
        ingest_url = serve(stack, "ingest", "api", FUNCTIONS / "main.py", ingest_env, workdir)
        trivial_url = serve(stack, "trivial", "trivial", ROOT / "tests" / "benchmarks" / "trivial.py", {}, workdir)

        framework_url = serve(stack, "framework-primitives", "primitives",
                              ROOT / "tests" / "benchmarks" / "framework_primitives.py",
                              {**ingest_env, "TICKETS_COLLECTION": "bench-framework-primitives",
                               "PYTHONPATH": str(FUNCTIONS)}, workdir)  # fmt: skip

        # The ingest API's warm p50, one client at a time (the first-request baseline, below).
        warm = ingest_load.http_load(ingest_url, bodies[: arguments.sequential], 1)
        warm_up = bodies[: min(50, len(bodies))]
        ingest_load.http_load(trivial_url, warm_up, arguments.concurrency)
        trivial = ingest_load.http_load(trivial_url, bodies, arguments.concurrency)
        primitive = [tickets[i % len(tickets)] for i in range(arguments.requests)]
        loads = {
            "engine": ingest_load.posts(ingest_url, bodies),
            "primitives": ingest_load.primitives(config.project, "bench-primitives", "bench-ingest", primitive),
            "framework_primitives": ingest_load.posts(framework_url, bodies),
        }
        # Warm every client and connection up (the primitives on documents of their own: theirs are made ahead).
        warm_ups = {**loads, "primitives": ingest_load.primitives(config.project, "bench-primitives", "bench-ingest",
                                                                  primitive[:50])}  # fmt: skip
        for items, make_worker in warm_ups.values():
            ingest_load.concurrently(items[:50], arguments.concurrency, make_worker)
        pid_of = {p.name: p.process.pid for p in stack.processes}
        # CPU each spent per request, in its own process (the emulators' is not production's): what
        # sizes an instance. The primitives run in this process, whose other threads idle meanwhile.
        cpu = {
            "engine": lambda: cpu_seconds(pid_of["ingest"]),
            "framework_primitives": lambda: cpu_seconds(pid_of["framework-primitives"]),
            "primitives": lambda: sum(os.times()[:2]),
        }
        measured = ingest_load.interleaved(loads, arguments.concurrency, arguments.ingest_rounds, cpu)
        engine, primitives, framework = (measured[k] for k in ("engine", "primitives", "framework_primitives"))
        # A fresh API instance's first request (started, answered /healthz, nothing more) on a stack
        # that is serving already: what a new instance pays in production. One request is one
        # sample of a noisy machine: the median over --cold-starts fresh instances, each its own.
        firsts = []
        for index in range(max(arguments.cold_starts, 1)):
            fresh_url = serve(stack, f"ingest-fresh-{index}", "api", FUNCTIONS / "main.py", ingest_env, workdir)
            firsts.append(ingest_load.first_request_ms(fresh_url, bodies[-2 - index]))
        first_ms = statistics.median(firsts)
        results["first_request"] = {
            "first_ms": first_ms,
            "first_ms_each": firsts,
            "first_of_fresh_stack_ms": first_of_stack_ms,
            "warm_p50_ms": warm["p50_ms"],
            "ratio_vs_warm_p50": round(first_ms / warm["p50_ms"], 2),
            "fresh_stack_ratio_vs_warm_p50": round(first_of_stack_ms / warm["p50_ms"], 2),
        }
        results["ingest"] = {
            "clients": arguments.concurrency,
            "engine": engine,
            "primitives": primitives,
            "framework_primitives": framework,
            "trivial_function": trivial,
            "rounds": arguments.ingest_rounds,
            "ratio_vs_primitives": round(engine["rps"] / primitives["rps"], 3),
            "ratio_vs_framework_primitives": round(engine["rps"] / framework["rps"], 3),
            "framework_primitives_ratio_vs_primitives": round(framework["rps"] / primitives["rps"], 3),
            "ratio_vs_trivial_function": round(engine["rps"] / trivial["rps"], 3),
            "p99_over_p50": round(engine["p99_ms"] / engine["p50_ms"], 2),
            "primitives_p99_over_p50": round(primitives["p99_ms"] / primitives["p50_ms"], 2),
            "framework_primitives_p99_over_p50": round(framework["p99_ms"] / framework["p50_ms"], 2),
        }

        fresh = tickets[: arguments.tickets]
        demo.call("POST", f"{lane.api_url}/classify", {"title": "warm up the pipeline"})
        classified = end_to_end(lane.api_url, fresh)
        repeats = end_to_end(lane.api_url, fresh)  # the same texts again: near-duplicates in memory
        results["end_to_end"] = {
            "classifier": summarise(classified, "classifier"),
            "memory": summarise(classified + repeats, "memory"),
        }
        parts = worker.adapters(stack, lane)
        stages = worker.stages(parts, fresh[0], arguments.stage_repeats)
        watched = {p.name: p.process.pid for p in stack.processes if p.name in ("default-process_ticket", "chroma")}
        cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        burst = worker.burst(ingest_url, stack, lane, parts, fresh, arguments.burst)
        # CPU per ticket of the worker and of the Chroma server during the burst (its ingest and polling included
        # in neither: they run in other processes).
        for name, key in (
            ("default-process_ticket", "worker_cpu_ms_per_ticket"),
            ("chroma", "chroma_cpu_ms_per_ticket"),
        ):
            used = cpu_seconds(watched[name]) - cpu_before[name]
            burst[key] = round(used * 1000 / max(burst["classified"], 1), 2)
        results["worker"] = {
            "burst": burst,
            "stages": stages,
            "tickets_per_second": burst["tickets_per_second"],
            "stage_bound_tickets_per_second": stages["stage_bound_tickets_per_second"],
            "ratio_vs_stage_bound": round(burst["tickets_per_second"] / stages["stage_bound_tickets_per_second"], 3),
        }
        if arguments.lookup_entries:
            print(f"lookup: {arguments.lookup_entries:,} entries (loaded once, then reused)", flush=True)
            results["lookup"] = lookup.measure(
                arguments.lookup_entries,
                arguments.lookup_queries,
                arguments.output_dir / "lookup-chroma",
                config.project,
            )
        results["backfill"] = backfill.measure(
            arguments.data, arguments.backfill_rows, project=config.project, chroma_url=stack.chroma_url
        )
        results["memory"] = {process.name: memory_of(process.process.pid) for process in stack.processes}
    results["memory"]["benchmark process (models, stages, backfill)"] = memory_of(os.getpid())
    starts = {function: cold_start.median_of(function, arguments.cold_starts) for function in cold_start.TARGETS}
    onnx, torch = starts["worker"], starts["worker-torch"]
    starts["worker_ratio_vs_torch"] = round(onnx["total_s"] / torch["total_s"], 3)
    starts["worker_rss_ratio_vs_torch"] = round(onnx["peak_rss_mib"] / torch["peak_rss_mib"], 3)
    results["cold_start"] = starts
    text = report.render(results, previous, arguments)
    print("\n" + text)
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    (arguments.output_dir / "benchmark.md").write_text(text + "\n")
    (arguments.output_dir / "benchmark.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {arguments.output_dir / 'benchmark.md'} and {arguments.output_dir / 'benchmark.json'}")


if __name__ == "__main__":
    main()
