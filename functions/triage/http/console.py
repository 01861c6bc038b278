"""Routes that describe the service itself: the review console page, liveness, the OpenAPI document."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import flask

from ..domain import Taxonomy
from . import schemas
from .app import Context, Route, json_response

CONSOLE = Path(__file__).with_name("console.html")


@functools.lru_cache(maxsize=1)
def _console_page(taxonomy: Taxonomy) -> str:
    """The page with the taxonomy's names in it: read and built once per process (per taxonomy)."""
    names = {"categories": list(taxonomy.category_names), "priorities": list(taxonomy.priority_names)}
    return CONSOLE.read_text(encoding="utf-8").replace("__TAXONOMY__", json.dumps(names).replace("</", "<\\/"))


def console(context: Context) -> flask.Response:
    response = flask.Response(_console_page(context.app.taxonomy()), status=200, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    # The page's own script and style only; it talks to this API and nothing else.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    return response


def health(context: Context) -> flask.Response:
    return json_response(schemas.Health(status="ok", version=context.app.version).model_dump())


def openapi(context: Context) -> flask.Response:
    return json_response(context.app.openapi)


ROUTES = [
    Route(
        "GET",
        "/console",
        console,
        "The review console (an HTML page; it asks for an API key and holds no data)",
        scope=None,
        responses={200: ("text/html", "Page")},
    ),
    Route(
        "GET", "/healthz", health, "Liveness; needs no API key", scope=None, responses={200: (schemas.Health, "Alive")}
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "This document",
        responses={200: (None, "OpenAPI 3.1 document")},
    ),
]
