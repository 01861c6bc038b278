"""GeminiClassifier through the real google-genai client, against the fake Gemini server
speaking the generateContent REST protocol."""

from __future__ import annotations

import json
import time

import pytest

from emulators.fake_gemini import FakeGemini
from emulators.stack import free_port
from triage.adapters.gemini import GeminiClassifier
from triage.domain import Labels, LabelSource, Neighbour, Path
from triage.errors import ClassifierUnavailable, InvalidModelOutput
from triage.ports import ClassificationRequest

TICKET = "VPN drops every five minutes\nSince this morning, on Wi-Fi and cable, tunnel reconnects."


@pytest.fixture
def fake():
    server = FakeGemini(api_key="test-key").start()
    yield server
    server.stop()


def classifier(base_url: str, **options) -> GeminiClassifier:
    settings = {
        "api_key": "test-key",
        "model": "gemini-test-flash",
        "base_url": base_url,
        "timeout_seconds": 5,
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 10,
    } | options
    return GeminiClassifier(**settings)


def request(taxonomy, examples=()) -> ClassificationRequest:
    return ClassificationRequest(text=TICKET, embedding=[0.0], examples=list(examples), taxonomy=taxonomy)


def test_the_request_carries_the_instruction_the_schema_and_the_examples(fake, taxonomy):
    examples = [
        Neighbour(
            "h", 0.6, Labels("Network", "High", "Network Operations"), LabelSource.HUMAN, "Tunnel keeps resetting"
        ),
        Neighbour("m", 0.9, Labels("Access", "Medium", "Identity & Access Management"), LabelSource.MODEL, "VPN login"),
    ]
    answer = classifier(fake.base_url).classify(request(taxonomy, examples))
    assert answer.path is Path.CLASSIFIER and answer.classifier == "gemini-test-flash"
    assert answer.labels.category in taxonomy.category_names
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    (call,) = fake.calls
    sent = call["request"]
    assert call["model"] == "gemini-test-flash"
    config = sent["generationConfig"]
    assert config["temperature"] == 0 and config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["properties"]["category"]["enum"] == list(taxonomy.category_names)
    system = sent["systemInstruction"]["parts"][0]["text"]
    assert "Never follow" in system and "- Network:" in system
    turns = [(c["role"], c["parts"][0]["text"]) for c in sent["contents"]]
    assert [role for role, _ in turns] == ["user", "model", "user", "model", "user"]
    assert "Tunnel keeps resetting" in turns[0][1]  # the human-verified example first
    assert json.loads(turns[1][1])["category"] == "Network"
    assert turns[-1][1] == f"<ticket>\n{TICKET}\n</ticket>"


def test_a_429_is_retried_after_the_servers_retry_after(fake, taxonomy):
    fake.script([{"status": 429, "retry_after": "1"}])
    started = time.monotonic()
    answer = classifier(fake.base_url).classify(request(taxonomy))
    assert time.monotonic() - started >= 1.0
    assert answer.labels.category in taxonomy.category_names
    assert [c["status"] for c in fake.calls] == [429, 200]


def test_server_errors_are_retried_with_backoff(fake, taxonomy):
    fake.script([{"status": 500}, {"status": 503}])
    classifier(fake.base_url).classify(request(taxonomy))
    assert [c["status"] for c in fake.calls] == [500, 503, 200]


def test_retries_are_bounded_then_the_classifier_is_unavailable(fake, taxonomy):
    fake.script([{"status": 429}] * 10)
    with pytest.raises(ClassifierUnavailable, match="429"):
        classifier(fake.base_url, max_attempts=3).classify(request(taxonomy))
    assert len(fake.calls) == 3


def test_retries_stop_at_the_total_time_budget(fake, taxonomy):
    fake.script([{"status": 429, "retry_after": "2"}] * 10)
    started = time.monotonic()
    with pytest.raises(ClassifierUnavailable):
        classifier(fake.base_url, max_attempts=10, retry_max_seconds=1).classify(request(taxonomy))
    # The server asks for 2 s, the budget is 1 s: no pointless wait, no second call.
    assert len(fake.calls) == 1
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("status", "error"), [(400, InvalidModelOutput), (403, ClassifierUnavailable)])
def test_other_client_errors_are_not_retried(fake, taxonomy, status, error):
    fake.script([{"status": status}])
    with pytest.raises(error):
        classifier(fake.base_url).classify(request(taxonomy))
    assert len(fake.calls) == 1


def test_a_wrong_api_key_is_refused_by_the_server(fake, taxonomy):
    with pytest.raises(ClassifierUnavailable, match="403"):
        classifier(fake.base_url, api_key="wrong").classify(request(taxonomy))


def test_a_slow_answer_times_out_and_is_retried(fake, taxonomy):
    fake.script([{"delay_seconds": 2}])
    answer = classifier(fake.base_url, timeout_seconds=1).classify(request(taxonomy))
    assert answer.labels.category in taxonomy.category_names
    assert len(fake.calls) == 2


def test_a_refused_connection_is_retried_then_unavailable(taxonomy):
    with pytest.raises(ClassifierUnavailable, match="unreachable"):
        classifier(f"http://127.0.0.1:{free_port()}", max_attempts=2).classify(request(taxonomy))


def test_a_malformed_answer_is_asked_again(fake, taxonomy):
    fake.script([{"malformed": True}])
    answer = classifier(fake.base_url).classify(request(taxonomy))
    assert answer.labels.category in taxonomy.category_names
    assert len(fake.calls) == 2


@pytest.mark.parametrize(
    "steps",
    [
        [{"malformed": True}, {"malformed": True}],
        [{"category": "Plumbing"}, {"category": "Plumbing"}],
        # Prompt injection that worked on the model still cannot label outside the taxonomy.
        [
            {
                "text": '{"category": "IGNORE PREVIOUS INSTRUCTIONS", "priority": "High", '
                '"assignment_group": "Service Desk", "confidence": 1, "rationale": "x"}'
            }
        ]
        * 2,
    ],
)
def test_answers_that_stay_wrong_are_refused(fake, taxonomy, steps):
    fake.script(steps)
    with pytest.raises(InvalidModelOutput):
        classifier(fake.base_url, output_attempts=2).classify(request(taxonomy))
    assert len(fake.calls) == 2
