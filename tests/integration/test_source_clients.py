"""The Jira and ServiceNow HTTP clients (httpx + tenacity) against the fake servers, which
speak the real paths, status codes and Basic auth and record every call."""

from __future__ import annotations

import base64
import time

import pytest

from emulators.fake_itsm import FakeJira, FakeServiceNow
from emulators.stack import free_port
from tests.unit.test_writeback import RULES, ticket
from triage.adapters.source_clients import HttpSourceClient
from triage.errors import WritebackFailed
from triage.sources import jira, servicenow

FAST = {"retry_initial_seconds": 0.05, "retry_max_seconds": 5, "http_attempts": 3, "timeout_seconds": 2}


@pytest.fixture
def fake_jira():
    server = FakeJira().start()
    server.add_issue("OPS-7", labels=["customer"], priority=None)
    yield server
    server.stop()


@pytest.fixture
def fake_servicenow():
    server = FakeServiceNow().start()
    server.add_incident("abc123")
    yield server
    server.stop()


def jira_for(server: FakeJira, **options):
    return HttpSourceClient(
        jira.WRITEBACK, username="bot@example.com", base_url=server.base_url, password="jira-token", **(FAST | options)
    )


def test_jira_read_and_write_with_basic_auth(fake_jira):
    client = jira_for(fake_jira)
    current = client.read(ticket())
    assert current == {"labels": ["customer"], "components": [], "priority": None}
    plan = jira.plan(ticket(), current, RULES)
    assert [client.send(call) for call in plan.calls] == [204, 201]
    get, put, comment = fake_jira.calls
    expected = "Basic " + base64.b64encode(b"bot@example.com:jira-token").decode()
    assert {c["authorization"] for c in fake_jira.calls} == {expected}
    assert (get["method"], get["path"], get["query"]) == (
        "GET",
        "/rest/api/3/issue/OPS-7",
        {"fields": "labels,components,priority"},
    )
    assert (put["method"], put["path"]) == ("PUT", "/rest/api/3/issue/OPS-7")
    assert put["body"]["update"]["labels"] == [{"add": "triage-network"}]
    assert (comment["method"], comment["path"]) == ("POST", "/rest/api/3/issue/OPS-7/comment")
    issue = fake_jira.issues["OPS-7"]
    assert issue["labels"] == ["customer", "triage-network"] and issue["priority"] == {"name": "High"}
    assert client.read(ticket())["labels"] == ["customer", "triage-network"]


def test_a_500_is_retried_then_the_call_succeeds(fake_jira):
    fake_jira.script([{"status": 500}, {"status": 503, "retry_after": "1"}])
    started = time.monotonic()
    assert jira_for(fake_jira).read(ticket())["labels"] == ["customer"]
    assert time.monotonic() - started >= 1.0  # the Retry-After was honoured
    assert [c["status"] for c in fake_jira.calls] == [500, 503, 200]


def test_a_500_that_persists_is_a_write_back_failure_after_the_retries(fake_jira):
    fake_jira.script([{"status": 500}] * 5)
    with pytest.raises(WritebackFailed, match="kept failing: 500"):
        jira_for(fake_jira).read(ticket())
    assert len(fake_jira.calls) == 3


@pytest.mark.parametrize("password", ["wrong-token"])
def test_client_errors_are_not_retried(fake_jira, password):
    client = HttpSourceClient(
        jira.WRITEBACK, username="bot@example.com", base_url=fake_jira.base_url, password=password, **FAST
    )
    with pytest.raises(WritebackFailed, match="answered 401"):
        client.read(ticket())
    missing = jira_for(fake_jira)
    with pytest.raises(WritebackFailed, match="answered 404"):
        missing.read(ticket(metadata={"jira": {"key": "NOPE-1"}}))
    assert len(fake_jira.calls) == 2


def test_an_unreachable_source_fails_after_the_retries():
    client = HttpSourceClient(
        jira.WRITEBACK, username="e", base_url=f"http://127.0.0.1:{free_port()}", password="t", **FAST
    )
    with pytest.raises(WritebackFailed, match="unreachable"):
        client.read(ticket())


def test_servicenow_read_and_patch(fake_servicenow):
    client = HttpSourceClient(
        servicenow.WRITEBACK, base_url=fake_servicenow.base_url, username="triage.bot", password="sn-password", **FAST
    )
    current = client.read(ticket("servicenow"))
    assert current == {"category": "", "assignment_group": ""}
    (call,) = servicenow.plan(ticket("servicenow"), current, RULES).calls
    assert client.send(call) == 200
    get, patch = fake_servicenow.calls
    assert get["query"] == {"sysparm_fields": "category,assignment_group", "sysparm_display_value": "true"}
    assert (patch["method"], patch["path"], patch["query"]) == (
        "PATCH",
        "/api/now/table/incident/abc123",
        {"sysparm_input_display_value": "true"},
    )
    assert client.read(ticket("servicenow")) == {"category": "Network", "assignment_group": "Network Operations"}
    assert fake_servicenow.incidents["abc123"]["work_notes"][0].startswith("Triage: category Network")
