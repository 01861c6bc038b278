"""The Gemini path on both backends, through the whole local stack: the worker on Vertex AI with
Application Default Credentials (a service-account key whose token endpoint is the fake's),
and a credential the API refuses on either backend leaves no ticket Failed."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators import demo
from tests.e2e.conftest import fake_calls

VPN = {"title": "VPN drops every five minutes", "description": "GlobalProtect disconnects on home Wi-Fi"}


def service_account_key(path, token_uri: str) -> str:
    """A service-account key file as Google issues them, its token endpoint the fake's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "triage-test",
                "private_key_id": "e2e",
                "private_key": pem,
                "client_email": "triage-worker@triage-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return str(path)


def vertex_env(fake_url: str, key_file: str) -> dict[str, str]:
    return {
        "CLASSIFIER": "gemini",
        "GEMINI_BACKEND": "vertex",
        "GEMINI_PROJECT": "triage-test",
        "GEMINI_LOCATION": "europe-west1",
        "GEMINI_BASE_URL": fake_url,
        "GOOGLE_APPLICATION_CREDENTIALS": key_file,
    }


@pytest.fixture(scope="module")
def vertex_lane(infrastructure, tmp_path_factory):
    url = infrastructure.fake_gemini_url
    key_file = service_account_key(tmp_path_factory.mktemp("adc") / "key.json", f"{url}/token")
    return infrastructure.add_lane("vertex", env=vertex_env(url, key_file))


@pytest.fixture(scope="module", params=["api", "vertex"])
def refused_lane(request, infrastructure, tmp_path_factory):
    """A worker whose credential the API refuses: a revoked key, or a token it no longer takes."""
    url = infrastructure.fake_gemini_url
    if request.param == "api":
        env = {"CLASSIFIER": "gemini", "GEMINI_API_KEY": "revoked-key", "GEMINI_BASE_URL": url}
    else:
        env = vertex_env(url, service_account_key(tmp_path_factory.mktemp("adc") / "key.json", f"{url}/token/revoked"))
    return infrastructure.add_lane(f"refused-{request.param}", env=env)


def test_the_worker_classifies_on_vertex_ai_with_its_service_account(vertex_lane, fake_gemini):
    status, accepted = demo.call("POST", f"{vertex_lane.api_url}/classify", VPN)
    assert status == 202
    ticket = demo.wait_until_processed(vertex_lane.api_url, accepted["ticket_id"], None, timeout=60)
    assert ticket["status"] == "Classified_By_AI" and ticket["classification"]["classifier"] == "gemini-3.5-flash"
    (call,) = [c for c in fake_calls(fake_gemini) if c["status"] == 200]
    assert call["vertex"] is True and call["model"] == "gemini-3.5-flash"


def test_a_refused_credential_leaves_no_ticket_failed(refused_lane, fake_gemini):
    status, accepted = demo.call("POST", f"{refused_lane.api_url}/classify", VPN)
    assert status == 202
    ticket = demo.wait_until_processed(refused_lane.api_url, accepted["ticket_id"], None, timeout=60)
    assert ticket["status"] == "Classified_By_AI"  # the local classifier answered...
    assert ticket["classification"]["classifier"] == "local-embedding"
    assert ticket["classification"]["needs_review"] is True  # ...and a human is asked to look
    assert {c["status"] for c in fake_calls(fake_gemini)} <= {400, 401}
