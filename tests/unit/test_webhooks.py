"""``/webhooks/jira`` and ``/webhooks/servicenow`` under functions-framework, on in-memory fakes,
fed the real sample bodies in ``tests/data`` and variants of them."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from tests.harness import Engine, error_of
from triage import bootstrap

DATA = Path(__file__).parents[1] / "data"
JIRA_CREATED = json.loads((DATA / "jira_issue_created.json").read_text())
JIRA_UPDATED_LABELS = json.loads((DATA / "jira_issue_updated_labels.json").read_text())
INCIDENT = json.loads((DATA / "servicenow_table_api_patch_incident.response.json").read_text())
SECRET = "s3cret-webhook"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def post_raw(api: Engine, path: str, body: bytes, headers: dict[str, str]):
    return api.client.post(path, data=body, headers=headers, content_type="application/json")


@pytest.fixture
def jira(taxonomy, monkeypatch) -> Engine:
    monkeypatch.setenv("JIRA_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("API_KEYS", raising=False)
    return Engine(taxonomy)


def test_a_real_jira_issue_created_body_makes_a_ticket(jira: Engine):
    body = json.dumps(JIRA_CREATED).encode()
    response = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["action"] == "created" and answer["status"] == "Pending"
    ticket = jira.store.tickets[answer["ticket_id"]]
    assert (ticket.title, ticket.description) == ("Unit test summary", "Unit test description, not that long")
    assert (ticket.source, ticket.external_id, ticket.tenant) == ("jira", "10040", "TES")
    assert ticket.reporter == "some-instance-test@gmail.com"
    assert ticket.metadata["jira"]["key"] == "TES-41" and ticket.metadata["jira"]["priority"] == "High"
    assert jira.publisher.messages == [(ticket.ticket_id, "classify")]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Hub-Signature": "sha256=" + "0" * 64}, {"X-Hub-Signature": "sha1=abc"}, signed(b"another body")],
    ids=["missing", "wrong", "garbled", "other-body"],
)
def test_a_missing_or_wrong_jira_signature_is_401_and_stores_nothing(jira: Engine, headers):
    body = json.dumps(JIRA_CREATED).encode()
    response = post_raw(jira, "/webhooks/jira", body, headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert jira.nothing_stored()


def test_a_retried_delivery_is_answered_once(jira: Engine):
    body = json.dumps(JIRA_CREATED).encode()
    headers = {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-1"}
    first = post_raw(jira, "/webhooks/jira", body, headers).get_json()
    second = post_raw(jira, "/webhooks/jira", body, headers)
    assert second.status_code == 202
    assert second.get_json()["ticket_id"] == first["ticket_id"] and second.get_json()["duplicate"] is True
    assert len(jira.publisher.messages) == 1 and len(jira.store.tickets) == 1
    # Another delivery id for the same issue is still the same ticket.
    other = post_raw(jira, "/webhooks/jira", body, {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-2"})
    assert other.get_json()["ticket_id"] == first["ticket_id"]
    assert len(jira.publisher.messages) == 1


def test_an_update_of_labels_only_is_acknowledged_and_ignored(jira: Engine):
    body = json.dumps(JIRA_UPDATED_LABELS).encode()
    response = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert response.status_code == 200
    assert response.get_json() == {"action": "ignored", "reason": "neither summary nor description changed"}
    assert jira.nothing_stored()


def test_an_update_of_the_description_re_triages(jira: Engine):
    created = json.dumps(JIRA_CREATED).encode()
    ticket_id = post_raw(jira, "/webhooks/jira", created, signed(created)).get_json()["ticket_id"]
    update = copy.deepcopy(JIRA_UPDATED_LABELS)
    update["changelog"]["items"] = [{"field": "description", "fieldId": "description", "toString": "new"}]
    body = json.dumps(update).encode()
    response = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert response.status_code == 202
    assert response.get_json()["action"] == "retriaged" and response.get_json()["ticket_id"] == ticket_id
    ticket = jira.store.tickets[ticket_id]
    assert ticket.description == "Unit test description, not that long, a little longer now"
    assert ticket.revision == 1 and ticket.status.value == "Pending"
    assert jira.publisher.messages == [(ticket_id, "classify"), (ticket_id, "classify")]
    again = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert again.get_json()["action"] == "unchanged"
    assert len(jira.publisher.messages) == 2


def test_an_atlassian_document_format_description_is_read_as_text(jira: Engine):
    issue = copy.deepcopy(JIRA_CREATED)
    issue["issue"]["fields"]["description"] = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "VPN drops "}, {"type": "mention", "attrs": {"text": "@ana"}}],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "since 9am"},
                                    {"type": "hardBreak"},
                                    {"type": "text", "text": "on Wi-Fi"},
                                ],
                            }
                        ],
                    }
                ],
            },
            {"type": "codeBlock", "content": [{"type": "text", "text": "ping: timeout"}]},
        ],
    }
    body = json.dumps(issue).encode()
    ticket_id = post_raw(jira, "/webhooks/jira", body, signed(body)).get_json()["ticket_id"]
    assert jira.store.tickets[ticket_id].description == "VPN drops @ana\nsince 9am\non Wi-Fi\nping: timeout"


def test_missing_fields_unicode_and_a_1_mb_description(jira: Engine, monkeypatch):
    issue = copy.deepcopy(JIRA_CREATED)
    fields = issue["issue"]["fields"]
    for name in ("priority", "labels", "components", "reporter", "creator", "project"):
        fields.pop(name)
    fields["summary"] = "Ümlaut ✓ 日本語 ticket"
    fields["description"] = "ж" * 1_000_000
    body = json.dumps(issue, ensure_ascii=False).encode()
    response = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert response.status_code == 202
    ticket = jira.store.tickets[response.get_json()["ticket_id"]]
    assert ticket.title == "Ümlaut ✓ 日本語 ticket"
    assert len(ticket.description) == 32_000 and ticket.metadata["truncated"] is True
    assert ticket.tenant == "default" and ticket.reporter == "some-instance-test@gmail.com"  # the event's user
    monkeypatch.setenv("WEBHOOK_MAX_BODY_BYTES", "1000")
    bootstrap._built.pop("settings", None)
    assert post_raw(jira, "/webhooks/jira", body, signed(body)).status_code == 413


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b.pop("issue"), 422),
        (lambda b: b["issue"]["fields"].update(summary="", description=None), 422),
        (lambda b: b.update(webhookEvent="jira:issue_deleted"), 200),
    ],
)
def test_jira_bodies_without_a_usable_issue(jira: Engine, mutate, status):
    issue = copy.deepcopy(JIRA_CREATED)
    mutate(issue)
    body = json.dumps(issue).encode()
    response = post_raw(jira, "/webhooks/jira", body, signed(body))
    assert response.status_code == status
    assert jira.nothing_stored()


def test_without_a_secret_the_jira_route_takes_an_api_key(taxonomy, monkeypatch):
    monkeypatch.delenv("JIRA_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("API_KEYS", "k1")
    api = Engine(taxonomy)
    body = json.dumps(JIRA_CREATED).encode()
    assert post_raw(api, "/webhooks/jira", body, {}).status_code == 401
    assert post_raw(api, "/webhooks/jira", body, {"X-API-Key": "k1"}).status_code == 202


# --------------------------------------------------------------------------- ServiceNow


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUTH_CASES = {
    "basic": (
        {"SERVICENOW_WEBHOOK_USER": "sn", "SERVICENOW_WEBHOOK_PASSWORD": "pw"},
        basic("sn", "pw"),
        basic("sn", "nope"),
    ),
    "bearer": ({"SERVICENOW_WEBHOOK_TOKEN": "tok"}, {"Authorization": "Bearer tok"}, {"Authorization": "Bearer bad"}),
    "hmac": ({"SERVICENOW_WEBHOOK_SECRET": SECRET}, None, {"X-Triage-Signature": "sha256=" + "1" * 64}),
}


@pytest.mark.parametrize("mode", sorted(AUTH_CASES))
def test_servicenow_credentials_as_configured(taxonomy, monkeypatch, mode):
    settings, good, bad = AUTH_CASES[mode]
    monkeypatch.setenv("SERVICENOW_WEBHOOK_AUTH", mode)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    api = Engine(taxonomy)
    body = json.dumps(INCIDENT).encode()
    if good is None:  # HMAC: the Business Rule signs the body (hex here; base64 is accepted too)
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
        good = {"X-Triage-Signature": base64.b64encode(digest).decode()}
    for headers in ({}, bad):
        response = post_raw(api, "/webhooks/servicenow", body, headers)
        assert response.status_code == 401, headers
        assert api.nothing_stored()
    response = post_raw(api, "/webhooks/servicenow", body, good)
    assert response.status_code == 202


def test_a_servicenow_incident_record_makes_one_ticket_per_sys_id(taxonomy, monkeypatch):
    monkeypatch.delenv("API_KEYS", raising=False)
    api = Engine(taxonomy)
    body = json.dumps(INCIDENT).encode()
    first = post_raw(api, "/webhooks/servicenow", body, {}).get_json()
    ticket = api.store.tickets[first["ticket_id"]]
    assert ticket.title == "Can't access Exchange server - is it down?"
    assert (ticket.source, ticket.external_id) == ("servicenow", "ef43c6d40a0a0b5700c77f9bf387afe3")
    assert ticket.metadata["servicenow"]["number"] == "INC0000050"
    assert ticket.metadata["servicenow"]["category"] == "hardware"
    assert ticket.reporter == "5b7c200d0a640069006b3845b5d0fa7c"  # caller_id's value: no display value sent
    again = post_raw(api, "/webhooks/servicenow", json.dumps({**INCIDENT["result"], "extra": {"x": 1}}).encode(), {})
    assert again.get_json()["ticket_id"] == first["ticket_id"] and again.get_json()["duplicate"] is True
    assert len(api.publisher.messages) == 1


def test_a_minimal_servicenow_body(taxonomy, monkeypatch):
    monkeypatch.delenv("API_KEYS", raising=False)
    api = Engine(taxonomy)
    body = {"sys_id": "abc123", "short_description": {"value": "Printer jam", "display_value": "Printer jam"}}
    response = post_raw(api, "/webhooks/servicenow", json.dumps(body).encode(), {})
    assert response.status_code == 202
    ticket = api.store.tickets[response.get_json()["ticket_id"]]
    assert (ticket.title, ticket.description, ticket.reporter) == ("Printer jam", "", None)
    for bad in ({"short_description": "no id"}, {"sys_id": "x" * 65, "short_description": "t"}, {"sys_id": "abc"}):
        assert post_raw(api, "/webhooks/servicenow", json.dumps(bad).encode(), {}).status_code == 422
    assert len(api.store.tickets) == 1


def test_the_webhook_routes_are_documented(jira: Engine):
    document = jira.client.get("/openapi.json").get_json()
    assert "/webhooks/jira" in document["paths"] and "/webhooks/servicenow" in document["paths"]
    assert "JiraWebhook" in document["components"]["schemas"]


def test_a_delivery_that_failed_is_taken_when_the_source_retries_it(jira: Engine):
    body = json.dumps(JIRA_CREATED).encode()
    headers = {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-9"}
    jira.publisher.failures = 1
    failed = post_raw(jira, "/webhooks/jira", body, headers)
    assert failed.status_code == 503 and jira.nothing_stored()
    retried = post_raw(jira, "/webhooks/jira", body, headers)
    assert retried.status_code == 202 and retried.get_json()["action"] == "created"
    assert len(jira.publisher.messages) == 1


def test_a_duplicate_arriving_before_the_first_ticket_is_visible_still_gets_its_id(jira: Engine):
    body = json.dumps(JIRA_CREATED).encode()
    jira.store.claim_delivery("jira", "delivery-early")  # the first delivery is still being taken
    response = post_raw(
        jira, "/webhooks/jira", body, {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-early"}
    )
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["duplicate"] is True and answer["status"] == "Pending"
    first = post_raw(jira, "/webhooks/jira", body, signed(body)).get_json()
    assert first["ticket_id"] == answer["ticket_id"]
