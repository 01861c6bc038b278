"""A burst of tickets through the local stack, and what it takes to count the outcome."""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

SHARED = Path(__file__).parents[2].parent / "shared" / "data" / "tickets" / "it_service_tickets_v3_subset.csv"


def ticket_texts(count: int) -> list[dict[str, str]]:
    """Real ticket texts (the shared IT set), repeated with a number when more are needed."""
    rows: list[str] = []
    if SHARED.exists():
        with SHARED.open(newline="") as handle:
            rows = [r["Document"] for r in csv.DictReader(handle)]
    if not rows:
        rows = [f"printer {i} jammed on floor {i % 7}" for i in range(500)]
    return [
        {
            "title": rows[i % len(rows)][:120] + (f" #{i}" if i >= len(rows) else ""),
            "description": rows[i % len(rows)][120:2000],
        }
        for i in range(count)
    ]


def burst(api_url: str, bodies: list[dict[str, str]], clients: int = 16) -> list[str]:
    """POST every body to /classify; the ticket ids, in order. Any non-202 fails the run."""
    host, port = api_url.removeprefix("http://").split(":")
    chunks = [bodies[i::clients] for i in range(clients)]

    def send(chunk: list[dict[str, str]]) -> list[str]:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        ids = []
        for body in chunk:
            for _attempt in range(5):
                connection.request("POST", "/classify", json.dumps(body), {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                if response.status == 202:
                    ids.append(answer["ticket_id"])
                    break
                assert response.status in (429, 503), answer  # only "retry later" may be retried
                time.sleep(float(response.getheader("Retry-After") or 1))
            else:
                raise AssertionError(f"gave up sending {body['title']!r}")
        connection.close()
        return ids

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [ticket_id for ids in pool.map(send, chunks) for ticket_id in ids]


def statuses(project: str, collection: str) -> dict[str, dict[str, Any]]:
    client = firestore.Client(project=project)
    return {snapshot.id: snapshot.to_dict() for snapshot in client.collection(collection).stream()}


def wait_until_settled(project: str, collection: str, expected: int, timeout: float = 1500) -> dict[str, dict]:
    started = time.monotonic()
    last_report = 0.0
    while True:
        tickets = statuses(project, collection)
        pending = sum(t["status"] == "Pending" for t in tickets.values())
        if len(tickets) >= expected and pending == 0:
            return tickets
        elapsed = time.monotonic() - started
        if elapsed - last_report >= 30:
            print(f"  {elapsed:5.0f}s: {len(tickets) - pending} of {len(tickets)} settled", flush=True)
            last_report = elapsed
        if elapsed > timeout:
            return tickets
        time.sleep(3)


def classified_log_counts(log: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "ticket classified":
                counts[entry["ticket_id"]] += 1
    return counts


def outcome(sent: list[str], tickets: dict[str, dict], log: Path) -> dict[str, Any]:
    counts = classified_log_counts(log)
    by_status = collections.Counter(tickets[i]["status"] for i in sent if i in tickets)
    failed = [i for i in sent if tickets.get(i, {}).get("status") == "Failed"]
    classified = by_status["Classified_By_AI"] + by_status["Classified_By_Cache"]
    degraded = sum(bool((tickets[i].get("classification") or {}).get("degraded")) for i in sent if i in tickets)
    review = sum(bool((tickets[i].get("classification") or {}).get("needs_review")) for i in sent if i in tickets)
    return {
        "sent": len(sent),
        "unique_tickets": len(set(sent)),
        "classified": classified,
        "by_cache": by_status["Classified_By_Cache"],
        "by_classifier": by_status["Classified_By_AI"],
        "failed_with_reason": sum(bool(tickets[i].get("last_error")) for i in failed),
        "failed": len(failed),
        "stuck": by_status["Pending"] + sum(i not in tickets for i in sent),
        "duplicates": sum(1 for i in sent if counts[i] > 1),
        "classified_twice_or_more": sum(c - 1 for i, c in counts.items() if c > 1 and i in set(sent)),
        "degraded": degraded,
        "needs_review": review,
    }


def check(result: dict[str, Any]) -> None:
    print("\n" + json.dumps(result, indent=2))
    assert result["unique_tickets"] == result["sent"]
    assert result["sent"] == result["classified"] + result["failed_with_reason"]
    assert result["failed"] == result["failed_with_reason"]
    assert result["duplicates"] == 0
    assert result["stuck"] == 0


@pytest.fixture
def project(emulator_env) -> str:
    """The project, with this process's Google clients pointed at the emulators."""
    return emulator_env.config.project
