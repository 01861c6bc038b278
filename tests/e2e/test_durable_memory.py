"""The memory survives losing Chroma: history loaded and tickets classified and corrected, then
Chroma stopped, its data folder deleted and started empty, then ``triage rebuild``: the same
tickets get the same memory answers as before, and nothing on record is lost."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emulators import demo
from emulators.stack import ManagedProcess, free_port, http_status, venv_bin
from tests.e2e.conftest import wait_for

DATA = Path(__file__).parents[1] / "data"
# Tickets of the loaded history, sent again: near-duplicates the memory answers.
PROBES = [row["Document"] for row in list(csv.DictReader((DATA / "it_tickets_sample.csv").open()))[:3]]


@pytest.fixture(scope="module")
def chroma(infrastructure, tmp_path_factory):
    """A Chroma server of this test's own, to lose."""
    folder = tmp_path_factory.mktemp("chroma-durable")
    port = free_port()
    url = f"http://{infrastructure.config.host}:{port}"
    process = ManagedProcess(
        "chroma-durable",
        [str(venv_bin("chroma", infrastructure.config.chroma_venv)), "run", "--path", str(folder / "data"),
         "--host", infrastructure.config.host, "--port", str(port)],
        folder / "chroma.log",
        lambda: http_status(f"{url}/api/v2/heartbeat") == 200,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )  # fmt: skip
    process.start(60)
    yield process, folder / "data"
    process.stop()


@pytest.fixture(scope="module")
def lane(infrastructure, chroma):
    return infrastructure.add_lane(
        "durable",
        env={
            "CHROMA_PORT": chroma[0].argv[-1],
            "TAXONOMY_FILE": str(DATA / "it_service_taxonomy.json"),
            "MEMORY_INDEX_CHECK_SECONDS": "1",
        },
    )


def triage(lane, *arguments: str) -> dict:
    command = [str(Path(sys.executable).parent / "triage"), *arguments, "--json"]
    environment = {**os.environ, **lane.env}
    return json.loads(subprocess.run(command, env=environment, check=True, capture_output=True, text=True).stdout)


def answers(api: str) -> list[tuple[str, dict[str, str]]]:
    """(status, labels) of each probe, submitted as a new ticket. (Which of its exact duplicates in
    the memory a probe matches is a tie the index breaks as it likes.)"""
    found = []
    for text in PROBES:
        ticket = demo.wait_until_processed(api, demo.submit(api, {"title": text}, None)[0], None)
        found.append((ticket["status"], ticket["labels"]))
    return found


def stats(api: str) -> dict:
    return demo.call("GET", f"{api}/stats?hours=1")[1]


def test_a_lost_chroma_is_rebuilt_from_firestore_with_nothing_lost(lane, chroma):
    api = lane.api_url
    loaded = triage(
        lane, "backfill", str(DATA / "it_tickets_sample.csv"), "--title-column", "Document",
        "--category-column", "Topic_group",
    )  # fmt: skip
    assert loaded["loaded"] == 400
    before = answers(api)
    assert [status for status, _ in before] == ["Classified_By_Cache"] * len(PROBES)
    # A reviewer corrects a ticket the classifier answered: the correction must survive too.
    corrected = demo.wait_until_processed(api, demo.submit(api, {"title": "VPN token app wont sync"}, None)[0], None)
    demo.call("POST", f"{api}/tickets/{corrected['ticket_id']}/feedback", {"category": "Access", "reviewer": "e2e"})
    memory = stats(api)["memory"]["tenants"]["default"]
    assert memory["index_missing"] is False and memory["recorded"] == memory["indexed"] == 400 + len(PROBES) + 1

    process, data = chroma
    process.kill()
    shutil.rmtree(data)
    process.start(60)  # empty

    missing = wait_for(lambda: stats(api)["memory"]["index_missing"] == ["default"], timeout=30)
    assert missing
    blind = demo.wait_until_processed(api, demo.submit(api, {"title": PROBES[0] + " again"}, None)[0], None)
    assert blind["status"] == "Classified_By_AI"  # nothing answered from a partial (empty) index
    assert any("triage rebuild" in d or "memory unavailable" in d for d in blind["classification"]["degraded"])

    rebuilt = triage(lane, "rebuild")
    recorded = 400 + len(PROBES) + 2  # the history, the probes, the corrected ticket, the blind probe
    assert rebuilt["entries"] == {"default": recorded}  # every backfilled row, ticket and correction
    memory = wait_for(lambda: (m := stats(api)["memory"]) and not m["index_missing"] and m, timeout=30)
    assert memory["tenants"]["default"] == {"recorded": recorded, "indexed": recorded, "index_missing": False}
    assert answers(api) == before
    again = demo.wait_until_processed(api, demo.submit(api, {"title": "VPN token app wont sync"}, None)[0], None)
    assert (again["status"], again["labels"]["category"]) == ("Classified_By_Cache", "Access")  # the correction
