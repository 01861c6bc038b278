"""Jira and ServiceNow webhooks through the whole stack, with write-back to fake Jira and
ServiceNow servers that record every call."""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from google.cloud import firestore

from emulators import demo
from tests.e2e.conftest import JIRA_SECRET, wait_for

DATA = Path(__file__).parents[1] / "data"
JIRA_CREATED = json.loads((DATA / "jira_issue_created.json").read_text())
INCIDENT = json.loads((DATA / "servicenow_table_api_patch_incident.response.json").read_text())["result"]


def send(lane, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{lane.api_url}{path}", data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def jira_issue(key: str, issue_id: str, summary: str, **fields) -> bytes:
    body = copy.deepcopy(JIRA_CREATED)
    body["issue"].update(id=issue_id, key=key)
    body["issue"]["fields"].update(summary=summary, description=f"{summary}. Reported by the team.", **fields)
    return json.dumps(body).encode()


def signature(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": "sha256=" + hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()}


def written_back(lane, ticket_id: str) -> dict:
    def finished():
        _, ticket = demo.call("GET", f"{lane.api_url}/tickets/{ticket_id}")
        state = ticket.get("writeback") or {}
        return ticket if state.get("status") in {"done", "failed", "dry_run"} else None

    return wait_for(finished, timeout=60)


def test_a_jira_issue_is_classified_and_labelled_in_jira(itsm_lane, fake_itsm):
    jira, _ = fake_itsm
    key, issue_id = f"OPS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4().int % 10**9)
    jira.add_issue(key, labels=["customer"], priority=None)
    body = jira_issue(key, issue_id, "Laptop screen flickers and goes black", priority=None)
    status, answer = send(itsm_lane, "/webhooks/jira", body, signature(body))
    assert status == 202 and answer["action"] == "created"
    ticket = written_back(itsm_lane, answer["ticket_id"])
    assert ticket["status"] == "Classified_By_AI" and ticket["writeback"]["status"] == "done"
    category = ticket["labels"]["category"]
    calls = [c for c in jira.calls if key in c["path"]]
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", f"/rest/api/3/issue/{key}"),
        ("PUT", f"/rest/api/3/issue/{key}"),
        ("POST", f"/rest/api/3/issue/{key}/comment"),
    ]
    assert {c["authorization"] for c in calls} == {"Basic " + base64.b64encode(b"bot@example.com:jira-token").decode()}
    label = "triage-" + "-".join(category.lower().replace("&", " ").split())
    assert calls[1]["body"]["update"]["labels"] == [{"add": label}]
    assert calls[1]["body"]["fields"] == {"priority": {"name": ticket["labels"]["priority"]}}
    assert f"category {category}" in calls[2]["body"]["body"]["content"][0]["content"][0]["text"]
    assert jira.issues[key]["labels"] == ["customer", label]


def test_a_priority_a_human_set_in_jira_is_not_overwritten(itsm_lane, fake_itsm):
    jira, _ = fake_itsm
    key, issue_id = f"OPS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4().int % 10**9)
    jira.add_issue(key, priority="Highest")
    body = jira_issue(key, issue_id, "Cannot log in, my password expired")
    _, answer = send(itsm_lane, "/webhooks/jira", body, signature(body))
    ticket = written_back(itsm_lane, answer["ticket_id"])
    put = next(c for c in jira.calls if c["method"] == "PUT" and key in c["path"])
    assert "fields" not in put["body"]
    assert ticket["writeback"]["skipped"] == ["priority: 'Highest' was set in Jira by someone else, left alone"]
    assert jira.issues[key]["priority"] == {"name": "Highest"}


def test_a_jira_500_is_retried_then_recorded_as_failed_and_the_labels_stay(itsm_lane, fake_itsm):
    jira, _ = fake_itsm
    key, issue_id = f"OPS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4().int % 10**9)
    jira.add_issue(key)
    jira.script([{"status": 500}] * 3)
    body = jira_issue(key, issue_id, "Printer on floor 2 is jammed")
    _, answer = send(itsm_lane, "/webhooks/jira", body, signature(body))
    ticket = written_back(itsm_lane, answer["ticket_id"])
    assert ticket["writeback"]["status"] == "failed"
    assert "kept failing: 500" in ticket["writeback"]["last_error"]
    assert ticket["status"] == "Classified_By_AI" and ticket["labels"] is not None
    attempts = [c for c in jira.calls if key in c["path"]]
    assert [c["status"] for c in attempts] == [500, 500, 500]


def test_a_duplicated_delivery_sent_twice_at_once_makes_one_ticket_and_one_classification(
    itsm_lane, fake_itsm, infrastructure
):
    jira, _ = fake_itsm
    key, issue_id = f"OPS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4().int % 10**9)
    jira.add_issue(key)
    body = jira_issue(key, issue_id, "Wi-Fi keeps disconnecting in meeting room 4")
    headers = {**signature(body), "X-Atlassian-Webhook-Identifier": str(uuid.uuid4())}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: send(itsm_lane, "/webhooks/jira", body, headers), range(2)))
    assert {status for status, _ in answers} == {202}
    (ticket_id,) = {answer["ticket_id"] for _, answer in answers}
    written_back(itsm_lane, ticket_id)
    log = infrastructure.config.workdir / "logs" / "itsm-process_ticket.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert sum(e.get("ticket_id") == ticket_id and e.get("message") == "ticket classified" for e in entries) == 1
    assert sum(c["method"] == "PUT" and key in c["path"] for c in jira.calls) == 1


def test_a_wrong_signature_stores_nothing(itsm_lane, emulator_env):
    client = firestore.Client(project=emulator_env.config.project)
    before = sum(1 for _ in client.collection(itsm_lane.env["TICKETS_COLLECTION"]).stream())
    body = jira_issue("OPS-X", "999999999", "Sneaky")
    for headers in ({}, {"X-Hub-Signature": "sha256=" + "ab" * 32}):
        status, answer = send(itsm_lane, "/webhooks/jira", body, headers)
        assert status == 401 and answer["error"]["code"] == "unauthorized"
    assert sum(1 for _ in client.collection(itsm_lane.env["TICKETS_COLLECTION"]).stream()) == before


def test_a_servicenow_incident_in_dry_run_records_the_patch_and_writes_nothing(itsm_lane, fake_itsm):
    _, servicenow = fake_itsm
    sys_id = uuid.uuid4().hex
    servicenow.add_incident(sys_id, category="hardware")
    incident = {**INCIDENT, "sys_id": sys_id}
    auth = {"Authorization": "Basic " + base64.b64encode(b"sn-rule:sn-rule-password").decode()}
    status, _ = send(itsm_lane, "/webhooks/servicenow", json.dumps(incident).encode(), {})
    assert status == 401
    status, answer = send(itsm_lane, "/webhooks/servicenow", json.dumps(incident).encode(), auth)
    assert status == 202
    ticket = written_back(itsm_lane, answer["ticket_id"])
    state = ticket["writeback"]
    assert state["status"] == "dry_run"
    (planned,) = state["calls"]
    assert planned["method"] == "PATCH" and planned["status_code"] is None
    assert planned["url"] == f"{servicenow.base_url}/api/now/table/incident/{sys_id}?sysparm_input_display_value=true"
    assert "category" not in planned["body"]  # "hardware" was set in ServiceNow: left alone
    assert planned["body"]["assignment_group"] == ticket["labels"]["assignment_group"]
    assert [c["method"] for c in servicenow.calls if sys_id in c["path"]] == ["GET"]
    assert servicenow.incidents[sys_id]["work_notes"] == []


def test_the_same_servicenow_incident_twice_is_one_ticket(itsm_lane):
    sys_id = uuid.uuid4().hex
    headers = {"Authorization": "Basic " + base64.b64encode(b"sn-rule:sn-rule-password").decode()}
    body = json.dumps({"sys_id": sys_id, "short_description": "VPN down for the whole Paris office"}).encode()
    first, second = (send(itsm_lane, "/webhooks/servicenow", body, headers)[1] for _ in range(2))
    assert first["ticket_id"] == second["ticket_id"] and second["duplicate"] is True
