"""The benchmark: one command, one table, each figure next to a baseline from the same run.

    make bench            # = .venv/bin/python tests/benchmarks/bench.py [--data ../shared/data]

On the local stack (emulators, Chroma, API and worker under functions-framework):

* ingest: requests/s and p50/p99 latency of ``POST /classify`` (store as Pending, publish,
  wait for Pub/Sub's acknowledgement) against a trivial functions-framework function that
  only parses the body, served the same way (same server, same threads, same client load);
* worker, memory path: tickets/s for a burst of repeats answered from memory, and the
  latency of each stage with the worker's own adapters (embed one text, query Chroma, a
  precondition write to Firestore) against raw ``model.encode`` of one text;
* backfill: texts/s of ``triage backfill`` against raw batched ``model.encode``;
* POST-to-classified time, p50/p95, on the classifier path (new tickets, local classifier)
  and on the memory path (repeats of tickets already classified), taken from each
  ticket's own ``created_at`` and ``classified_at``;
* peak RSS of every process (the kernel's VmHWM, children included).

Writes the table as Markdown and the figures as JSON (``--output-dir``, default
``bench-results/``); a ``benchmark.json`` already there is the previous run, shown in a
column of its own so a change can be compared with it.

The ingest API publishes to a topic no worker consumes, so the worker's CPU does not
compete with the ingest figures; the end-to-end runs go through the real push worker.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

sys.path.insert(1, str(ROOT / "functions"))
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load(url: str, bodies: list[bytes], concurrency: int) -> dict[str, float]:
    """Send every body once, ``concurrency`` keep-alive connections at a time."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    failures = []
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop()
            started = time.perf_counter()
            connection.request("POST", "/classify", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 202:
                    failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


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


def peak_rss_mib(pid: int) -> float:
    """The largest peak RSS among a process and its descendants (VmHWM), in MiB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    peak, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return round(peak, 1)


def timed(function, repeat: int) -> dict[str, float]:
    latencies = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2)}


def stages(stack, lane, text: str, ticket_id: str, repeat: int) -> dict[str, dict[str, float]]:
    """Each stage of the memory path with the worker's own adapters, against raw encode."""
    from google.cloud import firestore

    from triage import domain
    from triage.adapters.chroma import ChromaMemory
    from triage.adapters.embedder import SentenceTransformerEmbedder
    from triage.adapters.firestore import FirestoreTicketStore

    os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    model = embedder.load()
    chroma = urllib.parse.urlsplit(stack.chroma_url)
    memory = ChromaMemory.connect(
        host=chroma.hostname, port=chroma.port, ssl=False, token=None, tenant="default_tenant",
        database="default_database", collection=lane.env["CHROMA_COLLECTION"],
        embedding_model=embedder.name, model_version=embedder.version,
    )  # fmt: skip
    store = FirestoreTicketStore(
        firestore.Client(project=stack.config.project), collection=lane.env["TICKETS_COLLECTION"]
    )
    vector = embedder.embed([text])[0]
    for warm in (lambda: model.encode([text]), lambda: memory.nearest(vector, tenant="default", limit=21)):
        warm()

    def write() -> None:
        with contextlib.suppress(domain.Unchanged):
            store.update(ticket_id, lambda t: dataclasses.replace(t, updated_at=datetime.now(UTC)))

    return {
        "raw_encode_one": timed(lambda: model.encode([text]), repeat),
        "embed": timed(lambda: embedder.embed([text]), repeat),
        "query": timed(lambda: memory.nearest(vector, tenant="default", limit=21), repeat),
        "write": timed(write, repeat),
    }


def burst(api: str, tickets: list[dict[str, str]]) -> dict[str, float]:
    """Post every ticket at once, wait for all: worker tickets/s from first created to last classified."""
    ids = []
    for ticket in tickets:
        status, body = demo.call("POST", f"{api}/classify", ticket)
        if status != 202:
            raise RuntimeError(f"POST /classify answered {status}: {body}")
        ids.append(body["ticket_id"])
    done = [demo.wait_until_processed(api, ticket_id, None, timeout=120) for ticket_id in ids]
    created = min(datetime.fromisoformat(t["created_at"]) for t in done)
    finished = max(datetime.fromisoformat(t["classification"]["classified_at"]) for t in done)
    from_memory = sum(1 for t in done if t["classification"]["path"] == "memory")
    return {
        "tickets": len(done),
        "from_memory": from_memory,
        "tickets_per_second": round(len(done) / max((finished - created).total_seconds(), 1e-6), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--requests", type=int, default=1000, help="ingest requests per server (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent ingest clients (default 8)")
    parser.add_argument("--tickets", type=int, default=60, help="tickets per end-to-end path (default 60)")
    parser.add_argument("--stage-repeats", type=int, default=50, help="timings per worker stage (default 50)")
    parser.add_argument("--backfill-rows", type=int, default=1000, help="rows of the IT set to backfill (default 1000)")
    parser.add_argument(
        "--output-dir", type=Path, default=ROOT / "bench-results", help="where benchmark.md and benchmark.json go"
    )
    arguments = parser.parse_args()
    previous_file = arguments.output_dir / "benchmark.json"
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else None

    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    config = StackConfig(
        project="triage-bench",
        firestore_port=free_port(),
        pubsub_port=free_port(),
        chroma_port=free_port(),
        workdir=workdir,
    )
    results: dict[str, object] = {"machine": f"{os.cpu_count()} CPUs", "python": sys.version.split()[0]}
    with LocalStack(config) as stack:
        stack.start_infrastructure()
        lane = stack.add_lane("default", env={"RATE_LIMIT_PER_MINUTE": "0"})
        # The ingest API: same code, its own topic with a subscription nobody reads.
        pubsub = f"http://{stack.pubsub_host}/v1/projects/{config.project}"
        rest(f"{pubsub}/topics/bench-ingest")
        rest(
            f"{pubsub}/subscriptions/bench-ingest-sink",
            payload={"topic": f"projects/{config.project}/topics/bench-ingest"},
        )
        servers = {}
        for name, target, source, env in (
            ("baseline", "trivial", ROOT / "tests" / "benchmarks" / "trivial.py", {}),
            (
                "ingest",
                "api",
                FUNCTIONS / "main.py",
                {"TICKETS_TOPIC": "bench-ingest", "LOG_LEVEL": "WARNING", "RATE_LIMIT_PER_MINUTE": "0"},
            ),
        ):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process_env = {**os.environ, **lane.env, **env, "THREADS": str(config.threads)}
            stack._spawn(
                ManagedProcess(
                    name,
                    [
                        str(venv_bin("functions-framework")),
                        "--target",
                        target,
                        "--source",
                        str(source),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    workdir / "logs" / f"bench-{name}.log",
                    lambda url=url: http_status(f"{url}/healthz") is not None,
                    env=process_env,
                    cwd=source.parent,
                ),
                timeout=60,
            )
            servers[name] = url

        tickets = read_tickets(arguments.data, max(arguments.requests, arguments.tickets))
        bodies = [json.dumps(tickets[i % len(tickets)]).encode() for i in range(arguments.requests)]
        warm = bodies[: min(50, len(bodies))]
        ingest = {}
        for name in ("baseline", "ingest"):
            load(servers[name], warm, arguments.concurrency)  # connections, clients, JIT caches
            ingest[name] = load(servers[name], bodies, arguments.concurrency)
        results["ingest"] = ingest

        fresh = tickets[: arguments.tickets]
        demo.call("POST", f"{lane.api_url}/classify", {"title": "warm up the pipeline"})
        classified = end_to_end(lane.api_url, fresh)
        repeats = end_to_end(lane.api_url, fresh)  # the same texts again: near-duplicates in memory
        results["end_to_end"] = {
            "classifier": summarise(classified, "classifier"),
            "memory": summarise(classified + repeats, "memory"),
        }
        results["worker_burst"] = burst(lane.api_url, fresh)  # a third time, all at once
        results["stages"] = stages(stack, lane, fresh[0]["title"], classified[0]["ticket_id"], arguments.stage_repeats)
        results["peak_rss_mib"] = {process.name: peak_rss_mib(process.process.pid) for process in stack.processes}

    from tests.benchmarks import backfill

    results["backfill"] = backfill.measure(arguments.data, arguments.backfill_rows)
    results["peak_rss_mib"]["benchmark process (model, stages, backfill)"] = peak_rss_mib(os.getpid())
    write_report(results, previous, arguments)


def write_report(results: dict, previous: dict | None, arguments: argparse.Namespace) -> None:
    ingest = results["ingest"]

    base, real = ingest["baseline"], ingest["ingest"]
    stage = results["stages"]
    raw_one = stage["raw_encode_one"]["p50_ms"]
    backfilled = results["backfill"]
    rows: list[tuple[str, str, float | None, float | None]] = [
        (f"ingest requests/s ({arguments.concurrency} clients)", "ingest.ingest.rps", real["rps"], base["rps"]),
        ("ingest p50 ms", "ingest.ingest.p50_ms", real["p50_ms"], base["p50_ms"]),
        ("ingest p99 ms", "ingest.ingest.p99_ms", real["p99_ms"], base["p99_ms"]),
        (
            f"worker tickets/s, memory path (burst of {results['worker_burst']['tickets']})",
            "worker_burst.tickets_per_second",
            results["worker_burst"]["tickets_per_second"],
            None,
        ),
    ]
    for name in ("embed", "query", "write"):
        rows.append((f"worker stage {name} p50 ms (vs raw encode of 1 text)", f"stages.{name}.p50_ms",
                     stage[name]["p50_ms"], raw_one))  # fmt: skip
    rows.append(
        (
            f"backfill texts/s ({backfilled['texts']} texts, vs raw batch-64 encode)",
            "backfill.backfill_texts_per_second",
            backfilled["backfill_texts_per_second"],
            backfilled["raw_encode_texts_per_second"],
        )
    )
    for path in ("classifier", "memory"):
        figures = results["end_to_end"][path]
        if figures["tickets"]:
            for q in ("p50", "p95"):
                rows.append(
                    (f"POST->classified {q} ms, {path} path (n={figures['tickets']})",
                     f"end_to_end.{path}.{q}_ms", figures[f"{q}_ms"], None)
                )  # fmt: skip
    for name, mib in results["peak_rss_mib"].items():
        rows.append((f"peak RSS MiB: {name}", f"peak_rss_mib.{name}", mib, None))

    def earlier(key: str) -> str:
        value: object = previous
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return f"{value:,.1f}" if isinstance(value, int | float) else ""

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:,.1f}"

    header = (
        f"Benchmark: {arguments.requests} ingest requests x {arguments.concurrency} clients, {arguments.tickets} "
        f"tickets per path; {results['machine']}, Python {results['python']}"
    )
    lines = [header, "", "| measure | engine | baseline | ratio | previous run |", "|---|---:|---:|---:|---:|"]
    for label, key, value, baseline in rows:
        ratio = f"{value / baseline:.2f}x" if value is not None and baseline else ""
        lines.append(f"| {label} | {number(value)} | {number(baseline)} | {ratio} | {earlier(key)} |")
    lines += [
        "",
        "Baselines: a functions-framework function that parses the body and answers 202, served the same way "
        "(ingest); raw `model.encode` of one text (worker stages) and of the same texts at batch 64 (backfill), "
        "measured in the same run.",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    (arguments.output_dir / "benchmark.md").write_text(table + "\n")
    (arguments.output_dir / "benchmark.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {arguments.output_dir / 'benchmark.md'} and {arguments.output_dir / 'benchmark.json'}")


if __name__ == "__main__":
    main()
