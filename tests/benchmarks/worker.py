"""The worker's memory path: its throughput on a burst, and the bound its own stages set.

* burst: tickets whose text the memory holds are stored through an API whose topic nobody
  reads, then their classify messages are published to the worker's topic at once; the rate
  is tickets over the time from that publish to the last ``classified_at``.
* stages, each timed alone with the worker's own adapters: embed one text, the Chroma query
  (21 neighbours, through the durable memory), the memory write (Firestore record and Chroma
  upsert), a ticket read and a ticket write (a precondition write after this process's own
  write, as the answer after the claim is). A memory-path ticket needs one of each, plus a
  second ticket write (claim: read and write; answer: write), so one thread could do at most
  ``1000 / sum`` tickets per second: the stage-sum bound.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.benchmarks.ingest_load import concurrently, percentile


def timed(function: Any, repeat: int) -> dict[str, float]:
    latencies = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2)}


def adapters(stack: Any, lane: Any) -> dict[str, Any]:
    """The worker's adapters, built the way bootstrap builds them, on the lane's collections."""
    from google.cloud import firestore

    from triage.adapters.chroma import ChromaIndex
    from triage.adapters.durable_memory import DurableMemory
    from triage.adapters.embedder import build_embedder
    from triage.adapters.firestore import FirestoreTicketStore
    from triage.adapters.firestore_memory import FirestoreMemoryRecords

    client = firestore.Client(project=stack.config.project)
    embedder = build_embedder("auto", "all-MiniLM-L6-v2")  # as the worker's default (EMBEDDING_BACKEND=auto)
    chroma = urllib.parse.urlsplit(stack.chroma_url)
    index = ChromaIndex.connect(
        host=chroma.hostname, port=chroma.port, ssl=False, token=None, tenant="default_tenant",
        database="default_database", collection=lane.env["CHROMA_COLLECTION"],
        embedding_model=embedder.name, model_version=embedder.version,
    )  # fmt: skip
    return {
        "client": client,
        "embedder": embedder,
        "index": index,
        "memory": DurableMemory(FirestoreMemoryRecords(client, lane.env["MEMORY_COLLECTION"]), index),
        "store": FirestoreTicketStore(client, lane.env["TICKETS_COLLECTION"]),
    }


def stages(parts: dict[str, Any], sample: dict[str, str], repeat: int) -> dict[str, Any]:
    """Each stage timed alone on one ticket of the burst's kind: its title and description,
    embedded as the worker embeds them (``Ticket.text``)."""
    from triage.domain import Labels, LabelSource, MemoryEntry, Submission, new_ticket

    embedder, memory, store = parts["embedder"], parts["memory"], parts["store"]
    ticket = new_ticket(Submission(**sample), ticket_id=f"bench-stage-{uuid.uuid4().hex[:8]}", now=datetime.now(UTC))
    text = ticket.text
    vector = embedder.embed([text])[0]
    store.create(ticket)
    entry = MemoryEntry(
        ticket_id=ticket.ticket_id,
        tenant="default",
        embedding=vector,
        text=text,
        labels=Labels("Software", "Medium", "Application Support"),
        label_source=LabelSource.MODEL,
    )

    def write() -> None:
        store.update(ticket.ticket_id, lambda t: dataclasses.replace(t, updated_at=datetime.now(UTC)))

    for warm in (lambda: embedder.encode([text]), lambda: memory.nearest(vector, tenant="default", limit=21), write):
        warm()
    found = {
        "raw_encode_one": timed(lambda: embedder.encode([text]), repeat),
        "embed": timed(lambda: embedder.embed([text]), repeat),
        "query": timed(lambda: memory.nearest(vector, tenant="default", limit=21), repeat),
        "memory_write": timed(lambda: memory.remember(entry), repeat),
        "ticket_read": timed(lambda: store.get(ticket.ticket_id), repeat),
        "ticket_write": timed(write, repeat),
    }
    parts_ms = {
        "embed": found["embed"]["p50_ms"],
        "query": found["query"]["p50_ms"],
        "memory_write": found["memory_write"]["p50_ms"],
        "ticket_read": found["ticket_read"]["p50_ms"],
        "ticket_writes (2)": 2 * found["ticket_write"]["p50_ms"],
    }
    total = sum(parts_ms.values())
    found["stage_sum_ms"] = round(total, 2)
    found["stage_sum_parts_ms"] = parts_ms
    found["stage_bound_tickets_per_second"] = round(1000 / total, 1)
    return found


def burst(ingest_url: str, stack: Any, lane: Any, parts: dict[str, Any], texts: list[dict], size: int) -> dict:
    """Store ``size`` repeats of texts the memory holds, then publish their messages to the
    worker at once; tickets per second from that publish to the last answer."""
    from google.cloud import pubsub_v1

    from triage.domain import MessageKind, messages

    bodies = [json.dumps(texts[i % len(texts)]).encode() for i in range(size)]
    ids: list[str] = []
    host, port = ingest_url.removeprefix("http://").split(":")

    def make_worker() -> Any:
        import http.client

        connection = http.client.HTTPConnection(host, int(port), timeout=30)

        def send(body: bytes) -> None:
            connection.request("POST", "/classify", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 202:
                raise RuntimeError(f"POST /classify answered {response.status}: {answer}")
            ids.append(answer["ticket_id"])

        return send

    concurrently(bodies, 8, make_worker)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.config.project, lane.topic)
    started = datetime.now(UTC)
    futures = [
        publisher.publish(topic, messages.encode(i, MessageKind.CLASSIFY), ticket_id=i, kind="classify") for i in ids
    ]
    for future in futures:
        future.result(timeout=60)
    collection = parts["client"].collection(lane.env["TICKETS_COLLECTION"])
    references = [collection.document(i) for i in ids]
    deadline = time.monotonic() + 600
    while True:
        found = [s.to_dict() for s in parts["client"].get_all(references, field_paths=["status", "classification"])]
        if all(f.get("status") != "Pending" for f in found) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    answered = [f for f in found if (f.get("classification") or {}).get("classified_at")]
    finished = max(f["classification"]["classified_at"] for f in answered)
    seconds = max((finished - started).total_seconds(), 1e-6)
    return {
        "tickets": len(ids),
        "classified": len(answered),
        "from_memory": sum(1 for f in answered if f["classification"].get("path") == "memory"),
        "seconds": round(seconds, 2),
        "tickets_per_second": round(len(answered) / seconds, 1),
    }
