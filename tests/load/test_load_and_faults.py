"""Load and faults through the whole local stack (``make test-slow``; several minutes).

Every run sends a burst through the real path (HTTP ingest, Pub/Sub push, worker, Firestore,
Chroma) and then counts, from Firestore and the worker's log: every ticket sent ends classified
or Failed with a reason, none twice, none stuck. The figures are printed.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from datetime import timedelta

import pytest

from tests.load.conftest import burst, check, outcome, statuses, ticket_texts, wait_until_settled

# One client sends thousands of tickets a minute here: the per-key rate limit is not under test.
UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "0"}


def log_of(infrastructure, lane):
    return infrastructure.config.workdir / "logs" / f"{lane.name}-process_ticket.log"


def process_named(infrastructure, name):
    return next(p for p in infrastructure.processes if p.name == name)


def when_classified(project, lane, count, timeout=300):
    """Block until at least ``count`` tickets of the lane have left Pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tickets = statuses(project, lane.env["TICKETS_COLLECTION"])
        if sum(t["status"] != "Pending" for t in tickets.values()) >= count:
            return
        time.sleep(1)
    raise AssertionError(f"{count} tickets were not classified within {timeout}s")


@pytest.fixture(scope="module")
def load_lane(infrastructure):
    return infrastructure.add_lane("load", env=UNLIMITED)


@pytest.fixture(scope="module")
def fault_lane(infrastructure):
    # A short lease, so a delivery lost with a killed worker is taken over within seconds.
    return infrastructure.add_lane("faults", env=UNLIMITED | {"PROCESSING_LEASE_SECONDS": "10"})


@pytest.fixture(scope="module")
def gemini_fault_lane(infrastructure):
    return infrastructure.add_lane(
        "gemini-faults",
        gemini=True,
        env=UNLIMITED
        | {"GEMINI_RETRY_INITIAL_SECONDS": "0.2", "GEMINI_RETRY_MAX_SECONDS": "5", "PROCESSING_LEASE_SECONDS": "30"},
    )


@pytest.mark.timeout(1800)
def test_a_burst_of_5000_tickets_is_classified_exactly_once(infrastructure, project, load_lane):
    started = time.monotonic()
    sent = burst(load_lane.api_url, ticket_texts(5000))
    ingest_seconds = time.monotonic() - started
    tickets = wait_until_settled(project, load_lane.env["TICKETS_COLLECTION"], len(sent))
    result = outcome(sent, tickets, log_of(infrastructure, load_lane))
    result |= {
        "ingest_seconds": round(ingest_seconds, 1),
        "ingest_per_second": round(len(sent) / ingest_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    check(result)
    assert result["failed"] == 0


@pytest.mark.timeout(1800)
def test_the_worker_killed_and_restarted_mid_burst(infrastructure, project, fault_lane):
    bodies = ticket_texts(600)
    worker = process_named(infrastructure, "faults-process_ticket")
    sent: list[str] = []
    sender = threading.Thread(target=lambda: sent.extend(burst(fault_lane.api_url, bodies)))
    sender.start()
    when_classified(project, fault_lane, 150)
    worker.kill()  # SIGKILL: deliveries in flight are lost mid-processing
    time.sleep(3)
    worker.start(timeout=120)
    sender.join()
    tickets = wait_until_settled(project, fault_lane.env["TICKETS_COLLECTION"], len(sent))
    result = outcome(sent, tickets, log_of(infrastructure, fault_lane)) | {"fault": "worker SIGKILL + restart"}
    check(result)


@pytest.mark.timeout(1800)
def test_the_chroma_server_stopped_and_restarted_mid_burst(infrastructure, project, fault_lane):
    from triage import bootstrap, service

    collection = fault_lane.env["TICKETS_COLLECTION"]
    before = set(statuses(project, collection))
    chroma = process_named(infrastructure, "chroma")
    sent: list[str] = []
    sender = threading.Thread(target=lambda: sent.extend(burst(fault_lane.api_url, ticket_texts(600))))
    sender.start()
    time.sleep(5)
    chroma.stop()
    time.sleep(15)  # classification goes on without the memory meanwhile
    chroma.start(timeout=60)
    sender.join()
    tickets = wait_until_settled(project, collection, len(before) + len(sent))
    result = outcome(sent, tickets, log_of(infrastructure, fault_lane)) | {"fault": "Chroma stopped 15 s"}
    unremembered = [i for i in sent if (tickets[i].get("classification") or {}).get("remembered") is False]
    result["classified_without_memory"] = len(unremembered)
    check(result)
    assert unremembered, "the outage should have been visible on some tickets"
    # The reconciler puts them into the memory once Chroma is back.
    for name, value in fault_lane.env.items():
        os.environ[name] = value  # restored after the test by the isolate_environment fixture
    bootstrap.reset()
    report = bootstrap.bind(service.reconcile)(timedelta(hours=1), 5000)
    assert len(report.remembered) == len(unremembered)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tickets = statuses(project, collection)
        left = [i for i in unremembered if tickets[i]["classification"].get("remembered") is False]
        if not left:
            break
        time.sleep(2)
    assert not left, f"{len(left)} tickets still missing from the memory"
    print(f"reconcile sent {len(report.remembered)} tickets to the memory; all are in it now")


@pytest.mark.timeout(1800)
def test_gemini_rate_limited_then_failing_then_recovering(infrastructure, project, gemini_fault_lane):
    url = infrastructure.fake_gemini_url
    urllib.request.urlopen(urllib.request.Request(f"{url}/_fake/calls", method="DELETE"), timeout=5).close()
    phases = [{"seconds": 30, "status": 429, "every": 2}, {"seconds": 15, "status": 500}]
    request = urllib.request.Request(
        f"{url}/_fake/schedule", data=json.dumps({"phases": phases}).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=5).close()
    sent = burst(gemini_fault_lane.api_url, ticket_texts(600))
    tickets = wait_until_settled(project, gemini_fault_lane.env["TICKETS_COLLECTION"], len(sent))
    result = outcome(sent, tickets, log_of(infrastructure, gemini_fault_lane))
    result["fault"] = "Gemini: 429 on half the calls for 30 s, then 500 for 15 s, then normal"
    calls = json.loads(urllib.request.urlopen(f"{url}/_fake/calls", timeout=30).read())["calls"]
    result["gemini_calls"] = len(calls)
    result["gemini_calls_by_status"] = {
        str(s): sum(c.get("status") == s for c in calls) for s in sorted({c.get("status") for c in calls}, key=str)
    }
    check(result)
