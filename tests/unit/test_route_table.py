"""One route table: a route added to it is routed, scope-checked and documented, with nothing else
to change."""

from __future__ import annotations

import flask
import pydantic
import pytest

from tests.harness import Engine, error_of
from triage import bootstrap
from triage.http import ROUTES, App, Context, Route
from triage.http.app import json_response


class EchoQuery(pydantic.BaseModel):
    word: str = pydantic.Field(min_length=1, max_length=5)


class Echo(pydantic.BaseModel):
    word: str


def echo(context: Context) -> flask.Response:
    return json_response({"word": context.query().word})


ECHO = Route(
    "GET", "/echo", echo, "Say the word back", scope="feedback", query=EchoQuery, responses={200: (Echo, "It")}
)


@pytest.fixture
def app(taxonomy, monkeypatch) -> flask.testing.FlaskClient:
    monkeypatch.setenv("API_KEYS", "reader=read,reviewer=feedback")
    Engine(taxonomy)  # the fakes behind the composition root
    test_app = App(
        [*ROUTES, ECHO],
        settings=bootstrap.settings,
        taxonomy=bootstrap.taxonomy,
        bind=bootstrap.bind,
        api_keys=bootstrap.api_keys,
        rate_limiter=bootstrap.rate_limiter,
    )
    flask_app = flask.Flask("test")
    flask_app.add_url_rule("/<path:anything>", "all", lambda anything: test_app.handle(flask.request))
    return flask_app.test_client()


def test_a_route_added_to_the_table_is_routed_scope_checked_and_documented(app):
    assert app.get("/echo?word=hi", headers={"X-API-Key": "reviewer"}).get_json() == {"word": "hi"}
    assert app.get("/echo?word=toolong", headers={"X-API-Key": "reviewer"}).status_code == 422
    assert error_of(app.get("/echo?word=hi"))["code"] == "unauthorized"
    assert error_of(app.get("/echo?word=hi", headers={"X-API-Key": "reader"}))["code"] == "forbidden"
    assert app.post("/echo", headers={"X-API-Key": "reviewer"}).status_code == 405
    document = app.get("/openapi.json", headers={"X-API-Key": "reader"}).get_json()
    operation = document["paths"]["/echo"]["get"]
    assert operation["operationId"] == "echo" and operation["summary"] == "Say the word back"
    assert operation["parameters"] == [
        {"name": "word", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 5}}
    ]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    assert "Echo" in document["components"]["schemas"]
