"""Both functions under functions-framework, fed by real Pub/Sub push from the emulator.

Two lanes share the emulators and Chroma: ``local`` classifies with the embedded
local classifier, ``gemini`` with the fake Gemini server through the real client.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from emulators import demo


@pytest.fixture(scope="session")
def local_lane(infrastructure):
    return infrastructure.add_lane("local")


@pytest.fixture(scope="session")
def gemini_lane(infrastructure):
    return infrastructure.add_lane(
        "gemini",
        gemini=True,
        env={
            "GEMINI_MAX_ATTEMPTS": "2",
            "GEMINI_RETRY_INITIAL_SECONDS": "0.1",
            "MAX_DELIVERY_ATTEMPTS": "4",
            "CLASSIFIER_FALLBACK": "none",  # these tests follow the retries through Pub/Sub
            "MEMORY_AUDIT_RATE": "0",  # they count Gemini calls: no background audit of memory answers
        },
    )


@pytest.fixture
def fake_gemini(infrastructure):
    url = infrastructure.fake_gemini_url
    urllib.request.urlopen(urllib.request.Request(f"{url}/_fake/calls", method="DELETE"), timeout=5).close()
    return url


def script_fake(url: str, steps: list[dict[str, Any]]) -> None:
    body = json.dumps({"steps": steps}).encode()
    request = urllib.request.Request(f"{url}/_fake/script", data=body, method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def fake_calls(url: str) -> list[dict[str, Any]]:
    return demo.call("GET", f"{url}/_fake/calls")[1]["calls"]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session")
def fake_itsm():
    from emulators.fake_itsm import FakeJira, FakeServiceNow

    jira, servicenow = FakeJira().start(), FakeServiceNow().start()
    yield jira, servicenow
    jira.stop()
    servicenow.stop()


JIRA_SECRET = "e2e-jira-secret"


@pytest.fixture(scope="session")
def itsm_lane(infrastructure, fake_itsm):
    """Webhooks in with their sources' credentials; Jira write-back on, ServiceNow in dry-run."""
    jira, servicenow = fake_itsm
    return infrastructure.add_lane(
        "itsm",
        env={
            "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
            "JIRA_WRITEBACK": "on",
            "JIRA_BASE_URL": jira.base_url,
            "JIRA_USER_EMAIL": "bot@example.com",
            "JIRA_API_TOKEN": "jira-token",
            "JIRA_WRITEBACK_FIELDS": "labels,priority",
            "SERVICENOW_WEBHOOK_AUTH": "basic",
            "SERVICENOW_WEBHOOK_USER": "sn-rule",
            "SERVICENOW_WEBHOOK_PASSWORD": "sn-rule-password",
            "SERVICENOW_WRITEBACK": "dry_run",
            "SERVICENOW_INSTANCE_URL": servicenow.base_url,
            "SERVICENOW_USER": "triage.bot",
            "SERVICENOW_PASSWORD": "sn-password",
            "WRITEBACK_MIN_CONFIDENCE": "0",
            "WRITEBACK_HTTP_ATTEMPTS": "3",
            "WRITEBACK_RETRY_INITIAL_SECONDS": "0.05",
        },
    )
