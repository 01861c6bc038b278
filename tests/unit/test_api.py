"""The ``api`` entry point, served the way functions-framework serves it, on in-memory fakes."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest
from openapi_spec_validator import validate
from werkzeug.test import EnvironBuilder

from tests.harness import Engine, error_of
from triage import bootstrap, domain
from triage.domain import AnswerPath, Classification, Labels, LabelSource
from triage.http import ROUTES

GOOD = {"title": "VPN drops every 5 minutes", "description": "Since this morning, on Wi-Fi and cable."}


@pytest.fixture
def api(taxonomy, monkeypatch) -> Engine:
    monkeypatch.delenv("API_KEYS", raising=False)
    return Engine(taxonomy)


def test_classify_answers_202_with_the_ticket_and_where_to_follow_it(api: Engine):
    response = api.post("/classify", GOOD)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "Pending" and body["duplicate"] is False
    assert body["status_url"] == f"http://localhost/tickets/{body['ticket_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert api.publisher.messages == [(body["ticket_id"], "classify")]


def test_public_base_url_shapes_the_status_url(taxonomy, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://triage.example.com/api/")
    api = Engine(taxonomy)
    body = api.post("/classify", GOOD).get_json()
    assert body["status_url"] == f"https://triage.example.com/api/tickets/{body['ticket_id']}"


def test_the_same_idempotency_key_returns_the_same_ticket(api: Engine):
    first = api.post("/classify", GOOD, {"Idempotency-Key": "abc"}).get_json()
    second = api.post("/classify", GOOD, {"Idempotency-Key": "abc"})
    assert second.status_code == 202
    assert second.get_json()["ticket_id"] == first["ticket_id"] and second.get_json()["duplicate"] is True
    assert len(api.publisher.messages) == 1
    reused = api.post("/classify", {"title": "something else"}, {"Idempotency-Key": "abc"})
    assert reused.status_code == 409 and error_of(reused)["code"] == "idempotency_key_reused"


def test_get_ticket_shows_its_state(api: Engine):
    ticket_id = api.post(
        "/classify", {**GOOD, "source": "jira", "external_id": "OPS-7", "metadata": {"k": [1]}}
    ).get_json()["ticket_id"]
    api.store.update(
        ticket_id,
        lambda t: domain.ticket.complete(
            t,
            Classification(
                Labels("Network", "High", "Network Operations"),
                0.8,
                "VPN words",
                AnswerPath.MEMORY,
                matched_ticket_id="old",
                similarity=0.97,
            ),
            now=api.clock(),
        ),
    )
    response = api.client.get(f"/tickets/{ticket_id}")
    assert response.status_code == 200
    ticket = response.get_json()
    assert ticket["status"] == "Classified_By_Cache"
    assert ticket["labels"] == {"category": "Network", "priority": "High", "assignment_group": "Network Operations"}
    assert ticket["classification"]["matched_ticket_id"] == "old"
    assert ticket["classification"]["similarity"] == 0.97
    assert ticket["source"] == "jira" and ticket["external_id"] == "OPS-7" and ticket["metadata"] == {"k": [1]}
    assert ticket["created_at"].startswith("2026-11-24T09:00:00")
    assert "fingerprint" not in ticket and "lease_expires_at" not in ticket


def test_feedback_corrects_the_ticket(api: Engine):
    ticket_id = api.post("/classify", GOOD).get_json()["ticket_id"]
    api.process(ticket_id)
    response = api.post(f"/tickets/{ticket_id}/feedback", {"category": "Network", "reviewer": "ana"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "Corrected_By_Human"
    assert body["corrections"][0]["category"] == "Network" and body["corrections"][0]["reviewer"] == "ana"
    assert body["corrections"][0]["confirmed"] is False
    assert api.memory.stored[ticket_id].labels.category == "Network"  # relabelled at once


def test_confirm_verifies_the_labels_without_correcting_them(api: Engine):
    ticket_id = api.post("/classify", GOOD).get_json()["ticket_id"]
    api.process(ticket_id)
    labels = api.client.get(f"/tickets/{ticket_id}").get_json()["labels"]
    response = api.post(f"/tickets/{ticket_id}/confirm", {"reviewer": "ana"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "Verified_By_Human" and body["labels"] == labels
    assert body["corrections"][0]["confirmed"] is True and body["corrections"][0]["reviewer"] == "ana"
    assert api.memory.stored[ticket_id].label_source is LabelSource.HUMAN
    # An empty body is a confirmation too, and saying it again changes nothing.
    again = api.client.post(f"/tickets/{ticket_id}/confirm")
    assert again.status_code == 200 and again.get_json()["status"] == "Verified_By_Human"
    stats = api.stats(window=timedelta(hours=1))
    assert stats["counts"]["Verified_By_Human"] == 1 and stats["counts"]["Corrected_By_Human"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [("feedback", {"category": "Network"}), ("confirm", {}), ("confirm", None)],
)
def test_a_verdict_on_a_pending_ticket_is_409_and_changes_nothing(api: Engine, path, body):
    ticket_id = api.post("/classify", GOOD).get_json()["ticket_id"]
    before = dict(api.store.tickets)
    response = (
        api.post(f"/tickets/{ticket_id}/{path}", body)
        if body is not None
        else api.client.post(f"/tickets/{ticket_id}/{path}")
    )
    assert response.status_code == 409 and error_of(response)["code"] == "conflict"
    assert "Pending" in error_of(response)["message"]
    assert api.store.tickets == before and len(api.publisher.messages) == 1


def test_healthz_and_openapi(api: Engine):
    health = api.client.get("/healthz")
    assert health.status_code == 200 and health.get_json() == {"status": "ok", "version": bootstrap.VERSION}
    document = api.client.get("/openapi.json").get_json()
    validate(document)
    documented = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, item in document["paths"].items()
        for method in item
    }
    served = {(route.path, route.method) for route in ROUTES}
    assert documented == served
    assert document["components"]["schemas"]["ClassifyRequest"]["properties"]["title"]["maxLength"] == 300
    # Bounds in JSON Schema's words (pydantic writes "ge"/"le", which no client reads, when a bound
    # follows a validator): a client told nothing of them sends values the server refuses.
    assert not {"ge", "gt", "le", "lt"} & set(keys_of(document["components"]["schemas"]))
    limit = document["components"]["schemas"]["ReconcileRequest"]["properties"]["limit"]["anyOf"][0]
    assert (limit["minimum"], limit["maximum"]) == (1, 5000)


def keys_of(node: object) -> list[str]:
    if isinstance(node, dict):
        return [key for key, value in node.items() for key in (key, *keys_of(value))]
    if isinstance(node, list):
        return [key for item in node for key in keys_of(item)]
    return []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": json.dumps(GOOD), "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": json.dumps(GOOD)}, 415, "unsupported_media_type"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 422, "validation_failed"),
        (
            {"data": json.dumps({"description": "no title"}), "content_type": "application/json"},
            422,
            "validation_failed",
        ),
        ({"data": json.dumps({"title": "   "}), "content_type": "application/json"}, 422, "validation_failed"),
        ({"data": json.dumps({"title": "x" * 301}), "content_type": "application/json"}, 422, "validation_failed"),
        (
            {"data": json.dumps({"title": "x", "priority": "P1"}), "content_type": "application/json"},
            422,
            "validation_failed",
        ),
        ({"data": json.dumps({"title": 7}), "content_type": "application/json"}, 422, "validation_failed"),
        (
            {"data": json.dumps({"title": "x", "metadata": {"k": "v" * 9000}}), "content_type": "application/json"},
            422,
            "validation_failed",
        ),
        (
            {"data": json.dumps({"title": "x", "description": "y" * 600_000}), "content_type": "application/json"},
            413,
            "payload_too_large",
        ),
    ],
)
def test_bad_classify_requests_get_a_json_4xx_and_store_nothing(api: Engine, request_kwargs, status, code):
    response = api.client.post("/classify", **request_kwargs)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert api.nothing_stored()


def test_a_missing_title_names_the_field(api: Engine):
    error = error_of(api.post("/classify", {"description": "x"}))
    assert error["details"] == [{"field": "title", "message": "Field required"}]


def test_a_streamed_body_over_the_limit_is_refused(api: Engine, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    bootstrap._built.pop("settings", None)
    # As gunicorn passes a chunked body: no Content-Length, the stream ends where the body does.
    builder = EnvironBuilder(
        path="/classify",
        method="POST",
        input_stream=io.BytesIO(json.dumps({"title": "x" * 200}).encode()),
        content_type="application/json",
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH")
    environ["wsgi.input_terminated"] = True
    response = api.client.open(environ)
    assert response.status_code == 413
    assert api.nothing_stored()


def test_an_invalid_idempotency_key_is_refused(api: Engine):
    response = api.post("/classify", GOOD, {"Idempotency-Key": "x" * 300})
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_idempotency_key"
    assert api.nothing_stored()


def test_unknown_tickets_routes_and_methods(api: Engine):
    assert error_of(api.client.get("/tickets/doesnotexist"))["code"] == "not_found"
    assert api.client.get("/tickets/..%2Fetc").status_code == 404
    assert error_of(api.client.get("/nowhere"))["code"] == "route_not_found"
    response = api.client.delete("/classify")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert error_of(api.post("/tickets/doesnotexist/feedback", {"category": "Access"}))["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"category": "Plumbing"}, 422, "invalid_labels"),
        ({"category": "Access", "assignment_group": "The Janitors"}, 422, "invalid_labels"),
        ({"priority": "High"}, 422, "validation_failed"),
        ({"category": "Access", "surprise": 1}, 422, "validation_failed"),
    ],
)
@pytest.mark.parametrize("classified", [False, True])
def test_bad_feedback_changes_nothing(api: Engine, body, status, code, classified):
    ticket_id = api.post("/classify", GOOD).get_json()["ticket_id"]
    if classified:
        api.process(ticket_id)
    before, published = dict(api.store.tickets), len(api.publisher.messages)
    memory = {k: v.labels for k, v in api.memory.stored.items()}
    response = api.post(f"/tickets/{ticket_id}/feedback", body)
    assert response.status_code == status and error_of(response)["code"] == code
    assert api.store.tickets == before and len(api.publisher.messages) == published
    assert {k: v.labels for k, v in api.memory.stored.items()} == memory
    assert api.calibrations.recorded == {}


def test_a_failed_publish_is_503_with_retry_after_and_nothing_stored(api: Engine):
    api.publisher.failures = 1
    response = api.post("/classify", GOOD)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert error_of(response)["code"] == "unavailable"
    assert api.nothing_stored()


def test_a_store_outage_is_503(api: Engine):
    api.store.fail_next.append("create")
    assert api.post("/classify", GOOD).status_code == 503
    assert api.nothing_stored()


def test_an_unexpected_error_is_a_json_500(api: Engine):
    bootstrap.override(store=None)  # a broken component: AttributeError deep inside
    response = api.post("/classify", GOOD)
    assert response.status_code == 500 and error_of(response) == {"code": "internal", "message": "internal error"}


# --------------------------------------------------------------------------- API keys


@pytest.fixture
def secured(taxonomy, monkeypatch) -> Engine:
    digest = hashlib.sha256(b"second-key").hexdigest()
    monkeypatch.setenv("API_KEYS", f"first-key, sha256:{digest}")
    return Engine(taxonomy)


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zmlyc3Qta2V5"}]
)
def test_without_a_valid_key_every_route_but_healthz_is_401(secured: Engine, headers):
    for response in (
        secured.post("/classify", GOOD, headers),
        secured.client.get("/tickets/abc", headers=headers),
        secured.post("/tickets/abc/feedback", {"category": "Access"}, headers),
        secured.client.get("/openapi.json", headers=headers),
    ):
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"
        assert "WWW-Authenticate" in response.headers
    assert secured.client.get("/healthz").status_code == 200
    assert secured.nothing_stored()


@pytest.mark.parametrize("headers", [{"X-API-Key": "first-key"}, {"Authorization": "Bearer second-key"}])
def test_a_valid_key_in_either_header_is_accepted(secured: Engine, headers):
    assert secured.post("/classify", GOOD, headers).status_code == 202


@pytest.mark.parametrize("path", ["/tickets/a%0Ab/confirm", "/tickets/%0A", "/console%0A"])
def test_a_path_the_framework_cannot_route_gets_a_json_404(api: Engine, path):
    # functions-framework's catch-all route does not match a newline: Flask itself answers
    # (schemathesis' ST105 found an HTML 404 there).
    response = api.client.post(path, json={})
    assert response.status_code == 404 and error_of(response)["code"] == "route_not_found"
    assert api.nothing_stored()


def test_the_largest_body_the_schema_allows_is_accepted(api: Engine):
    # Every character astral, written as JSON escapes (12 bytes each): still under MAX_BODY_BYTES.
    body = json.dumps({"title": "\U0001f3fb" * 300, "description": "\U0001f3fb" * 32_000, "reporter": "r"})
    assert len(body) > 384_000
    response = api.client.post("/classify", data=body, content_type="application/json")
    assert response.status_code == 202, response.get_json()
