"""Hostile input, generated: schemathesis against ``/openapi.json`` and hypothesis on the webhook
parsers and the Pub/Sub message decoder. Zero 5xx, zero tickets stored from a rejected request."""

from __future__ import annotations

import base64
import json

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.harness import Engine
from triage.domain import MessageKind, messages
from triage.errors import BadRequest, MalformedMessage
from triage.sources import jira, servicenow

FUZZ = settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# 400 bodies for each of the three decoders: 1,200 generated inputs.
PARSERS = settings(FUZZ, max_examples=400)


def state(api: Engine) -> tuple:
    return tuple(sorted(api.store.tickets)), len(api.publisher.messages), frozenset(api.store.deliveries)


def test_generated_requests_to_every_route_never_get_a_5xx(taxonomy, monkeypatch):
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "0")
    api = Engine(taxonomy)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    calls: dict[str, int] = {}

    def fuzz(operation, mode) -> None:
        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            before = state(api)
            response = case.call()
            calls[operation.label] = calls.get(operation.label, 0) + 1
            assert response.status_code < 500, (case.as_curl_command(), response.text[:300])
            if response.status_code >= 400:
                assert state(api) == before, case.as_curl_command()

        try:
            check()
        except Unsatisfiable:
            # No invalid request exists for an operation without parameters or body (GET /healthz).
            assert mode is GenerationMode.NEGATIVE, operation.label

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(result.ok(), mode)
    print(f"\nschemathesis: {sum(calls.values())} generated requests over {len(calls)} operations: {calls}")
    assert sum(calls.values()) >= 1000
    assert len(calls) == len(list(schema.get_all_operations()))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
JIRA_LIKE = st.fixed_dictionaries(
    {
        "webhookEvent": st.sampled_from(["jira:issue_created", "jira:issue_updated", "comment_created", ""]) | JSON,
        "issue": st.fixed_dictionaries(
            {
                "id": st.text(max_size=10) | JSON,
                "fields": st.dictionaries(
                    st.sampled_from(
                        ["summary", "description", "priority", "labels", "components", "project", "reporter"]
                    ),
                    JSON,
                )
                | JSON,
            }
        )
        | JSON,
        "changelog": JSON,
    }
)


@PARSERS
@given(body=JIRA_LIKE | JSON)
def test_the_jira_parser_accepts_or_rejects_cleanly(body):
    try:
        event = jira.parse_webhook(body, tenant=None)
    except BadRequest:
        return
    assert event.action in {"create", "update", "ignore"}
    if event.submission is not None:
        assert event.submission.title and len(event.submission.title) <= 300


@PARSERS
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["sys_id", "short_description", "description", "number", "caller_id", "record", "result", "category"]
        ),
        JSON,
    )
    | JSON
)
def test_the_servicenow_parser_accepts_or_rejects_cleanly(body):
    try:
        event = servicenow.parse_incident(body, tenant="default")
    except BadRequest:
        return
    assert event.submission is not None and event.submission.external_id


@PARSERS
@given(
    data=st.one_of(
        JSON,
        st.builds(lambda d, a: {"message": {"data": d, "attributes": a}}, st.text(max_size=40) | JSON, JSON),
        st.builds(
            lambda payload: {"message": {"data": base64.b64encode(json.dumps(payload).encode()).decode()}},
            JSON
            | st.fixed_dictionaries(
                {"ticket_id": JSON, "kind": st.sampled_from([k.value for k in MessageKind]) | JSON}
            ),
        ),
    )
)
def test_the_message_decoder_accepts_or_rejects_cleanly(data):
    try:
        message = messages.decode_pubsub_event(data)
    except MalformedMessage:
        return
    assert message.kind in set(MessageKind)
