"""Benchmark of the pipeline on the local stack; not part of the test run.

    .venv/bin/python tests/benchmarks/pipeline.py [--data ../shared/data] [--requests 1000]

Prints, from one run on this machine:

* ingest: requests/s and p50/p99 latency of ``POST /classify`` (store as Pending, publish,
  wait for Pub/Sub's acknowledgement) against a trivial functions-framework function that
  only parses the body, served the same way (same server, same threads, same client load);
* POST-to-classified time, p50/p95, on the classifier path (new tickets, local classifier)
  and on the memory path (repeats of tickets already classified), taken from each
  ticket's own ``created_at`` and ``classified_at``.

The ingest API publishes to a topic no worker consumes, so the worker's CPU does not
compete with the ingest figures; the end-to-end runs go through the real push worker.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--requests", type=int, default=1000, help="ingest requests per server (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent ingest clients (default 8)")
    parser.add_argument("--tickets", type=int, default=60, help="tickets per end-to-end path (default 60)")
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    arguments = parser.parse_args()

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

    base, real = ingest["baseline"], ingest["ingest"]
    rows = [
        ("ingest requests/s", f"{real['rps']:.0f}", f"{base['rps']:.0f}", f"{real['rps'] / base['rps']:.2f}x"),
        ("ingest p50 ms", f"{real['p50_ms']:.1f}", f"{base['p50_ms']:.1f}", f"{real['p50_ms'] / base['p50_ms']:.1f}x"),
        ("ingest p99 ms", f"{real['p99_ms']:.1f}", f"{base['p99_ms']:.1f}", f"{real['p99_ms'] / base['p99_ms']:.1f}x"),
    ]
    for path in ("classifier", "memory"):
        figures = results["end_to_end"][path]
        if figures["tickets"]:
            rows.append(
                (f"POST->classified p50 ms ({path} path, n={figures['tickets']})", f"{figures['p50_ms']:.0f}", "", "")
            )
            rows.append(
                (f"POST->classified p95 ms ({path} path, n={figures['tickets']})", f"{figures['p95_ms']:.0f}", "", "")
            )
    print(
        f"\nPipeline benchmark: {arguments.requests} ingest requests x {arguments.concurrency} clients, "
        f"{arguments.tickets} tickets per path; {results['machine']}, Python {results['python']}\n"
    )
    print(f"| {'measure':<52} | {'engine':>8} | {'baseline':>8} | {'ratio':>6} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for row in rows:
        print(f"| {row[0]:<52} | {row[1]:>8} | {row[2]:>8} | {row[3]:>6} |")
    print("\nbaseline: a functions-framework function that parses the body and answers 202, served the same way.")
    if arguments.output:
        arguments.output.write_text(json.dumps(results, indent=2))
        print(f"figures written to {arguments.output}")


if __name__ == "__main__":
    main()
