"""The API keeps its published contract on the real stack: schemathesis, as an outside client
would run it (``st run <api>/openapi.json --checks all``), against both functions on the
emulators, Chroma and the worker, with API keys on. Zero failures, and a rejected request
stores nothing: every ticket in Firestore is one the API acknowledged with a 2xx."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

KEY = "contract-admin-key"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def contract_lane(infrastructure):
    return infrastructure.add_lane("contract", env={"API_KEYS": f"{KEY}=admin", "RATE_LIMIT_PER_MINUTE": "0"})


def schemathesis(api_url: str, report: Path) -> subprocess.CompletedProcess:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", f"{api_url}/openapi.json",
        "--header", f"X-API-Key: {KEY}",
        "--checks", "all",
        "--max-examples", "80",
        "--seed", "0",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--report", "vcr", "--report-vcr-path", str(report),
        "--no-color",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT, check=False)


def operation(request: dict, api_url: str) -> str:
    path = request["uri"].split("?")[0].removeprefix(api_url)
    path = re.sub(r"^/tickets/[^/]+", "/tickets/{ticket_id}", path)
    return f"{request['method']} {path}"


def acknowledged_ticket_ids(interactions: list[dict]) -> set[str]:
    """Ticket ids the API answered with a 2xx for: the only tickets it may have stored."""
    found = set()
    for interaction in interactions:
        request, response = interaction["request"], interaction["response"]
        created = request["method"] == "POST" and re.search(r"/(classify|webhooks/[a-z]+)$", request["uri"])
        if created and 200 <= int(response["status"]["code"]) < 300:
            found |= set(re.findall(r'"ticket_id":"([A-Za-z0-9_-]+)"', response["body"].get("string", "")))
    return found


def test_schemathesis_with_every_check_finds_no_failure(contract_lane, emulator_env, tmp_path):
    from google.cloud import firestore

    cassette = tmp_path / "cassette.yaml"
    run = schemathesis(contract_lane.api_url, cassette)
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]

    # libyaml's safe loader: the cassette is about 30 MB, which pure-Python YAML takes 40 s to read.
    interactions = yaml.load(cassette.read_text(), Loader=yaml.CSafeLoader)["http_interactions"]
    per_operation = Counter(operation(i["request"], contract_lane.api_url) for i in interactions)
    print(f"\nschemathesis sent {len(interactions)} requests: {dict(sorted(per_operation.items()))}")
    assert len(interactions) >= 1000
    assert all(int(i["response"]["status"]["code"]) < 500 for i in interactions)

    client = firestore.Client(project=emulator_env.config.project)
    collection = client.collection(contract_lane.env["TICKETS_COLLECTION"])
    stored = {document.id for document in collection.select([]).stream()}
    assert stored == acknowledged_ticket_ids(interactions)
