"""Ingest under load, and its baselines: the same HTTP load against the engine's ``api`` and a
trivial functions-framework function, and the engine's two primitives (a Firestore create and
a Pub/Sub publish acknowledged) called straight from threads, with the same client libraries
and the same concurrency, without HTTP or any code of ours in between; and the same two
primitives behind functions-framework with nothing else (``framework_primitives.py``).

The systems that share the emulators are measured in interleaved rounds (``interleaved``): the
Java emulators keep getting faster for thousands of requests (their JIT), so whichever system
ran second used to look faster for that reason alone."""

from __future__ import annotations

import functools
import http.client
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def figures(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


Load = tuple[list[Any], Callable[[], Callable[[Any], None]]]  # the items, and a worker factory


def concurrently(items: list[Any], concurrency: int, make_worker: Callable[[], Callable[[Any], None]]) -> dict:
    """Run every item once through ``concurrency`` threads, each with its own worker (a
    connection, say); latency per item and throughput over the wall time."""
    latencies, wall = timed(items, concurrency, make_worker)
    return figures(latencies, wall)


def interleaved(loads: dict[str, Load], concurrency: int, rounds: int, cpu: dict[str, Callable[[], float]]) -> dict:
    """Each load's items in ``rounds`` equal parts, the systems taking turns part by part (ABBA:
    the order reverses every round), so that each sees the emulators as warm as the others on
    average. Throughput is each system's requests over the time its own parts took; CPU ms per
    request from ``cpu`` (each system's CPU seconds so far), counted over its own parts only."""
    names = list(loads)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    wall = dict.fromkeys(names, 0.0)
    used = dict.fromkeys(names, 0.0)
    for turn in range(rounds):
        for name in names if turn % 2 == 0 else reversed(names):
            items, make_worker = loads[name]
            size = -(-len(items) // rounds)
            part = items[turn * size : (turn + 1) * size]
            before = cpu[name]()
            measured, elapsed = timed(part, concurrency, make_worker)
            used[name] += cpu[name]() - before
            latencies[name] += measured
            wall[name] += elapsed
    return {
        name: figures(latencies[name], wall[name])
        | {"cpu_ms_per_request": round(used[name] * 1000 / max(len(latencies[name]), 1), 2)}
        for name in names
    }


def timed(items: list[Any], concurrency: int, make_worker: Callable[[], Callable[[Any], None]]) -> tuple[list, float]:
    """Latency per item, and the wall time of all of them."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    queue = list(items)

    def thread() -> None:
        work = make_worker()
        while True:
            with lock:
                if not queue or errors:
                    return
                item = queue.pop()
            started = time.perf_counter()
            try:
                work(item)
            except BaseException as error:  # reported below, after every thread stopped
                with lock:
                    errors.append(error)
                return
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=thread) for _ in range(concurrency)]
    started = time.perf_counter()
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failures, the first: {errors[0]!r}")
    return latencies, time.perf_counter() - started


def post_classify(url: str) -> Callable[[bytes], None]:
    """A keep-alive connection that POSTs one body to /classify and insists on 202."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def send(body: bytes) -> None:
        connection.request("POST", "/classify", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 202:
            raise RuntimeError(f"POST /classify answered {response.status}: {answer[:200]!r}")

    return send


def http_load(url: str, bodies: list[bytes], concurrency: int) -> dict:
    return concurrently(bodies, concurrency, lambda: post_classify(url))


def posts(url: str, bodies: list[bytes]) -> Load:
    return bodies, lambda: post_classify(url)


def first_request_ms(url: str, body: bytes) -> float:
    """One POST /classify on a new connection, in milliseconds."""
    send = post_classify(url)
    started = time.perf_counter()
    send(body)
    return round((time.perf_counter() - started) * 1000, 2)


@functools.cache
def clients(project: str) -> tuple[Any, Any]:
    """A Firestore client and a publisher as the engine makes them (same batch settings), kept
    between runs so that a warm-up run leaves them connected."""
    from google.cloud import firestore, pubsub_v1

    publisher = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002))
    return firestore.Client(project=project), publisher


def primitives(project: str, collection: str, topic: str, tickets: list[dict]) -> Load:
    """What one ingest request must do at the least, with the client libraries the engine uses
    (and its publisher's batch settings): create the ticket's document, publish its message and
    wait for Pub/Sub's acknowledgement. The documents are made before the clock starts."""
    from triage.adapters.firestore_records import ticket_to_document
    from triage.domain import Submission, new_ticket

    client, publisher = clients(project)
    topic_path = publisher.topic_path(project, topic)
    collection_of = client.collection(collection)
    now = datetime.now(UTC)
    prepared = []
    for ticket in tickets:
        ticket_id = uuid.uuid4().hex
        document = ticket_to_document(new_ticket(Submission(**ticket), ticket_id=ticket_id, now=now))
        prepared.append((ticket_id, document, f'{{"ticket_id":"{ticket_id}","kind":"classify"}}'.encode()))

    def make_worker() -> Callable[[tuple[str, dict, bytes]], None]:
        def one(item: tuple[str, dict, bytes]) -> None:
            ticket_id, document, message = item
            collection_of.document(ticket_id).create(document)
            publisher.publish(topic_path, message, ticket_id=ticket_id, kind="classify").result(timeout=30)

        return one

    return prepared, make_worker
