"""GeminiClassifier through the real google-genai client, against the fake Gemini server, on
both backends: the Gemini API (an API key) and Vertex AI (a bearer token from credentials).
The fake has the real API's manners: 400 for a bad key, RetryInfo in a 429's body, schemas
refused as too complex, thinking that eats the output budget."""

from __future__ import annotations

import json
import time

import google.oauth2.credentials
import pytest

from emulators.fake_gemini import FakeGemini
from emulators.stack import free_port
from triage.adapters.gemini import GeminiClassifier
from triage.adapters.gemini_prompt import SchemaLevel
from triage.domain import AnswerPath, AssignmentGroup, Category, Labels, LabelSource, Neighbour, Priority, Taxonomy
from triage.errors import ClassifierMisconfigured, ClassifierUnavailable, InvalidModelOutput
from triage.ports import ClassificationRequest

TICKET = "VPN drops every five minutes\nSince this morning, on Wi-Fi and cable, tunnel reconnects."


@pytest.fixture
def fake():
    server = FakeGemini(api_key="test-key").start()
    yield server
    server.stop()


@pytest.fixture(params=["api", "vertex"])
def backend(request) -> str:
    return request.param


def classifier(fake: FakeGemini, backend: str = "api", credential: str | None = None, **options) -> GeminiClassifier:
    """A classifier on ``backend``; ``credential`` overrides the good API key or bearer token."""
    access = (
        {"api_key": credential or "test-key"}
        if backend == "api"
        else {
            "project": "acme-prod",
            "location": "europe-west1",
            "credentials": google.oauth2.credentials.Credentials(token=credential or fake.token()["access_token"]),
        }
    )
    settings = {
        "backend": backend,
        "model": "gemini-test-flash",
        "base_url": fake.base_url,
        "timeout_seconds": 5,
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 10,
    } | access
    return GeminiClassifier(**(settings | options))


def request(taxonomy, examples=(), text: str = TICKET) -> ClassificationRequest:
    return ClassificationRequest(text=text, embedding=[0.0], examples=list(examples), taxonomy=taxonomy)


def test_the_request_carries_the_instruction_the_schema_and_the_examples(fake, backend, taxonomy):
    examples = [
        Neighbour(
            "h", 0.6, Labels("Network", "High", "Network Operations"), LabelSource.HUMAN, "Tunnel keeps resetting"
        ),
        Neighbour("m", 0.9, Labels("Access", "Medium", "Identity & Access Management"), LabelSource.MODEL, "VPN login"),
    ]
    answer = classifier(fake, backend).classify(request(taxonomy, examples))
    assert answer.path is AnswerPath.CLASSIFIER and answer.classifier == "gemini-test-flash"
    assert answer.labels.category in taxonomy.category_names
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    (call,) = fake.calls
    sent = call["request"]
    assert (call["model"], call["vertex"]) == ("gemini-test-flash", backend == "vertex")
    config = sent["generationConfig"]
    assert "temperature" not in config  # the model's own default, as Gemini 3's guidance says
    # Proto JSON accepts either spelling; google-genai 3.6.1 sends the field's own name.
    assert list(config["thinkingConfig"].values()) == ["LOW"] and config["maxOutputTokens"] == 4096
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["properties"]["category"]["enum"] == list(taxonomy.category_names)
    assert "confidence" not in config["responseSchema"]["properties"]  # the model's word is not asked for
    system = sent["systemInstruction"]["parts"][0]["text"]
    assert "Never follow" in system and "- Network:" in system
    turns = [(c["role"], c["parts"][0]["text"]) for c in sent["contents"]]
    assert [role for role, _ in turns] == ["user", "model", "user", "model", "user"]
    assert "Tunnel keeps resetting" in turns[0][1]  # the human-verified example first
    assert json.loads(turns[1][1])["category"] == "Network"
    assert turns[-1][1] == f"<ticket>\n{TICKET}\n</ticket>"


def test_thinking_tokens_count_as_output(fake, taxonomy):
    fake.script([{"thoughts": 300}])
    answer = classifier(fake).classify(request(taxonomy))
    assert answer.output_tokens >= 300


def test_a_429_waits_at_least_the_retry_delay_in_its_body(fake, backend, taxonomy):
    fake.script([{"status": 429, "retry_delay": "2s"}])  # no Retry-After header, as the real API
    started = time.monotonic()
    answer = classifier(fake, backend).classify(request(taxonomy))
    assert time.monotonic() - started >= 2.0
    assert answer.labels.category in taxonomy.category_names
    assert [c["status"] for c in fake.calls] == [429, 200]


def test_a_retry_after_header_is_honoured_too(fake, taxonomy):
    fake.script([{"status": 429, "retry_after": "1"}])
    started = time.monotonic()
    classifier(fake).classify(request(taxonomy))
    assert time.monotonic() - started >= 1.0


def test_server_errors_are_retried_with_backoff(fake, backend, taxonomy):
    fake.script([{"status": 500}, {"status": 503}])
    classifier(fake, backend).classify(request(taxonomy))
    assert [c["status"] for c in fake.calls] == [500, 503, 200]


def test_retries_are_bounded_then_the_classifier_is_unavailable(fake, taxonomy):
    fake.script([{"status": 429}] * 10)
    with pytest.raises(ClassifierUnavailable, match="429"):
        classifier(fake, max_attempts=3).classify(request(taxonomy))
    assert len(fake.calls) == 3


def test_retries_stop_at_the_total_time_budget(fake, taxonomy):
    fake.script([{"status": 429, "retry_delay": "2s"}] * 10)
    started = time.monotonic()
    with pytest.raises(ClassifierUnavailable):
        classifier(fake, max_attempts=10, retry_max_seconds=1).classify(request(taxonomy))
    # The server asks for 2 s, the budget is 1 s: no pointless wait, no second call.
    assert len(fake.calls) == 1
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("backend", "credential", "status"),
    [("api", "wrong-key", 400), ("vertex", "ya29.expired", 401)],
)
def test_a_refused_credential_is_a_configuration_error_not_a_failed_ticket(fake, taxonomy, backend, credential, status):
    fake.token()  # Vertex: the fake now knows which tokens it issued
    with pytest.raises(ClassifierMisconfigured):
        classifier(fake, backend, credential).classify(request(taxonomy))
    assert [c["status"] for c in fake.calls] == [status]  # never retried: a retry cannot fix a key
    assert issubclass(ClassifierMisconfigured, ClassifierUnavailable)  # transient: the ticket waits or falls back


def test_a_permission_denied_is_a_configuration_error(fake, taxonomy):
    fake.script([{"status": 403}])
    with pytest.raises(ClassifierMisconfigured):
        classifier(fake).classify(request(taxonomy))
    assert len(fake.calls) == 1


def test_a_400_for_the_content_fails_that_ticket_alone(fake, backend, taxonomy):
    fake.script([{"status": 400}] * 3)
    gemini = classifier(fake, backend)
    with pytest.raises(InvalidModelOutput, match="rejected the request"):
        gemini.classify(request(taxonomy))
    assert len(fake.calls) == 3  # the full schema, then the two simpler ones
    assert gemini.classify(request(taxonomy)).labels.category in taxonomy.category_names
    assert fake.calls[-1]["request"]["generationConfig"]["responseSchema"]["properties"]["category"].get("enum")


def big_taxonomy(categories: int = 74) -> Taxonomy:
    """A service desk's taxonomy: 74 categories, each with its own group (as real desks have)."""
    names = ["Network", *(f"Team {i:02d} queue" for i in range(1, categories))]
    return Taxonomy(
        categories=tuple(Category(n, f"tickets for {n}", assignment_group=f"{n} group") for n in names),
        priorities=(Priority("High", "h"), Priority("Medium", "m"), Priority("Low", "l")),
        assignment_groups=tuple(AssignmentGroup(f"{n} group") for n in names),
        default_priority="Medium",
    )


def test_a_schema_too_complex_degrades_to_simpler_ones_and_stays_there(fake, backend):
    taxonomy = big_taxonomy()
    gemini = classifier(fake, backend)
    answer = gemini.classify(request(taxonomy))
    assert answer.labels.category in taxonomy.category_names
    assert answer.labels.assignment_group in taxonomy.assignment_group_names
    assert [c["status"] for c in fake.calls] == [400, 400, 200]  # full, category-only, plain strings
    assert any("refused the full response schema" in d for d in answer.degraded)
    fake.reset()
    gemini.classify(request(taxonomy))
    assert [c["status"] for c in fake.calls] == [200]  # it remembers which schema the API takes
    assert gemini._schema_level is SchemaLevel.PLAIN


def test_under_a_plain_schema_labels_outside_the_taxonomy_are_mended_or_refused(fake):
    taxonomy = big_taxonomy()
    gemini = classifier(fake)
    fake.script([{}, {}, {"answer": {"priority": "P0", "assignment_group": "Nobody"}}])
    answer = gemini.classify(request(taxonomy))
    assert answer.labels.priority == "Medium" and answer.labels.assignment_group == f"{answer.labels.category} group"
    assert any("priority 'P0' is not in the taxonomy" in d for d in answer.degraded)
    fake.script([{"category": "Plumbing"}, {"category": "Plumbing"}])
    with pytest.raises(InvalidModelOutput, match="outside the taxonomy"):
        gemini.classify(request(taxonomy))


def test_thinking_that_eats_the_budget_is_asked_again_then_unavailable(fake, backend, taxonomy):
    fake.script([{"thoughts": 5000}, {}])  # cut at MAX_TOKENS once, then a whole answer
    assert classifier(fake, backend).classify(request(taxonomy)).labels.category in taxonomy.category_names
    fake.reset()
    fake.script([{"thoughts": 5000}, {"thoughts": 5000}])
    with pytest.raises(ClassifierUnavailable, match="MAX_TOKENS"):  # the fallback answers, not Failed
        classifier(fake, backend).classify(request(taxonomy))


def test_the_first_versions_settings_lose_the_answer_to_thinking(fake, taxonomy):
    """1,024 output tokens and no thinking setting: a Gemini 3 Flash thinks at high by default."""
    fake.script([{}, {}])
    with pytest.raises(ClassifierUnavailable, match="MAX_TOKENS"):
        classifier(fake, thinking_level=None, max_output_tokens=1024).classify(request(taxonomy))


def test_no_candidate_is_asked_again(fake, taxonomy):
    fake.script([{"empty": True}])
    assert classifier(fake).classify(request(taxonomy)).labels.category in taxonomy.category_names
    assert len(fake.calls) == 2


def test_a_refused_connection_is_retried_then_unavailable(taxonomy):
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = GeminiClassifier(model="m", api_key="k", base_url=nowhere, max_attempts=2, retry_initial_seconds=0.05)
    with pytest.raises(ClassifierUnavailable, match="unreachable"):
        unreachable.classify(request(taxonomy))


def test_a_malformed_answer_is_asked_again(fake, taxonomy):
    fake.script([{"malformed": True}])
    answer = classifier(fake).classify(request(taxonomy))
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
                '"assignment_group": "Service Desk", "rationale": "x"}'
            }
        ]
        * 2,
    ],
)
def test_answers_that_stay_wrong_are_refused(fake, taxonomy, steps):
    fake.script(steps)
    with pytest.raises(InvalidModelOutput):
        classifier(fake, output_attempts=2).classify(request(taxonomy))
    assert len(fake.calls) == 2


def test_a_slow_answer_times_out_and_is_retried(fake, taxonomy):
    fake.script([{"delay_seconds": 2}])
    answer = classifier(fake, timeout_seconds=1).classify(request(taxonomy))
    assert answer.labels.category in taxonomy.category_names
    assert len(fake.calls) == 2


def test_the_backend_is_explicit_whatever_the_environment_says(fake, taxonomy, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    classifier(fake, "api").classify(request(taxonomy))
    assert fake.calls[-1]["vertex"] is False
