"""The HTTP API behind the ``api`` entry point: ONE route table, and the app that serves it.

Each ``Route`` says its method, path, scope, handler, and the models of its body, query,
headers and answers. Routing, the API-key and scope checks, request decoding and
``/openapi.json`` all derive from that table, so what the document promises is what the
server does. Every failure becomes ``{"error": {"code", "message"}}`` with its status.
This module must never hold business rules or talk to a client library: handlers call
use cases, bound to their collaborators by the composition root (``bootstrap``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import flask
import pydantic
from werkzeug import exceptions as http_exceptions
from werkzeug.routing import Map, Rule

from .. import logs, metrics
from ..config import Settings
from ..domain import Taxonomy
from ..errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TransientError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from ..security import ApiKey, RateLimiter, authorize

log = logging.getLogger(__name__)

T = TypeVar("T")
Bind = Callable[[Callable[..., T]], Callable[..., T]]


@dataclasses.dataclass(frozen=True)
class Header:
    """A request header a route reads, with the rule its value must follow (400 otherwise)."""

    name: str
    description: str
    pattern: str | None = None
    max_length: int | None = None
    code: str = "invalid_header"

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.pattern:
            schema["pattern"] = self.pattern
        if self.max_length:
            schema["maxLength"] = self.max_length
        return schema

    def read(self, request: flask.Request) -> str | None:
        value = request.headers.get(self.name)
        if value is None:
            return None
        too_long = self.max_length is not None and len(value) > self.max_length
        if too_long or (self.pattern is not None and not re.search(self.pattern, value)):
            rule = f"at most {self.max_length} characters" if self.max_length else "a value"
            raise BadRequest(f"{self.name} must be {rule} matching {self.pattern}", code=self.code)
        return value


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # werkzeug rule syntax: /tickets/<ticket_id>
    handler: Callable[[Context], flask.Response]
    summary: str
    # The API-key scope the route needs; None: public.
    scope: str | None = "read"
    # A webhook authenticates with its source's own credential when one is configured (the
    # handler checks it), else with an API key: says whether the settings configure one.
    source_credential: Callable[[Settings], bool] | None = None
    body: type[pydantic.BaseModel] | None = None
    body_required: bool = True
    body_schema: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # from the body model's reference
    query: type[pydantic.BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    responses: Mapping[int, tuple[type[pydantic.BaseModel] | str | None, str]] = dataclasses.field(
        default_factory=dict
    )  # status -> (model, or a media type for a non-JSON answer; description)
    errors: tuple[int, ...] = ()  # beyond those derived from the route (auth, body, path, 503)
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


@dataclasses.dataclass
class Context:
    """One request, as a handler sees it."""

    app: App
    request: flask.Request
    route: Route
    path_arguments: dict[str, str]

    @property
    def settings(self) -> Settings:
        return self.app.settings()

    def use(self, use_case: Callable[..., T]) -> Callable[..., T]:
        """The use case with its collaborators bound (by the composition root)."""
        return self.app.bind(use_case)

    def authenticate(self, scope: str) -> None:
        self.app.authenticate(self.request, scope)

    def rate_limit(self, caller: str) -> None:
        self.app.rate_limit(caller)

    def raw_body(self, limit: int | None = None) -> bytes:
        return read_body(self.request, limit or self.settings.max_body_bytes)

    def body(self) -> Any:
        """The body, validated by the route's model (422 with every problem)."""
        model = self.route.body
        assert model is not None
        request = self.request
        if not self.route.body_required and not request.content_length and request.mimetype != "application/json":
            return model()
        return validate(model, decode_json(self.raw_body()))

    def query(self) -> Any:
        assert self.route.query is not None
        return validate(self.route.query, self.request.args.to_dict(), what="query")

    def header(self, name: str) -> str | None:
        for header in self.route.headers:
            if header.name == name:
                return header.read(self.request)
        raise KeyError(name)


class App:
    def __init__(
        self,
        routes: Sequence[Route],
        *,
        settings: Callable[[], Settings],
        taxonomy: Callable[[], Taxonomy],
        bind: Bind,
        api_keys: Callable[[], tuple[ApiKey, ...]] = tuple,
        rate_limiter: Callable[[], RateLimiter | None] = lambda: None,
        version: str = "0",
    ):
        """The settings, taxonomy, keys and limiter are read through these callables, each
        answering with the process's one instance (the composition root's components)."""
        self.routes = tuple(routes)
        self.settings = settings
        self.taxonomy = taxonomy
        self.bind = bind
        self.api_keys = api_keys
        self.rate_limiter = rate_limiter
        self.version = version
        self._map = Map(
            [Rule(r.path, methods=[r.method], endpoint=index) for index, r in enumerate(self.routes)],
            strict_slashes=False,
        )

    # ------------------------------------------------------------------ serving

    def handle(self, request: flask.Request) -> flask.Response:
        trace = logs.bind_trace(request.headers, self.settings().google_cloud_project)
        started = time.perf_counter()
        try:
            response = self._handle(request)
        finally:
            logs.TRACE.reset(trace)
        route = request.environ.get(_ROUTE, "unmatched")
        metrics.HTTP_REQUESTS.labels(route, f"{response.status_code // 100}xx").inc()
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response

    def _handle(self, request: flask.Request) -> flask.Response:
        try:
            route, arguments = self.match(request)
            request.environ[_ROUTE] = f"{route.method} {route.path}"
            by_source = route.source_credential is not None and route.source_credential(self.settings())
            if route.scope is not None and not by_source:
                self.authenticate(request, route.scope)
            return route.handler(Context(self, request, route, arguments))
        except (BadRequest, TransientError) as error:
            if isinstance(error, TransientError):
                log.warning("request failed: dependency unavailable", extra={"path": request.path, "error": str(error)})
            return error_response(error)
        except Exception as error:
            log.exception("request failed", extra={"path": request.path})
            return error_response(error)

    def match(self, request: flask.Request) -> tuple[Route, dict[str, str]]:
        try:
            index, arguments = self._map.bind_to_environ(request.environ).match()
        except http_exceptions.NotFound:
            raise NotFound(f"no route for {request.path}", code="route_not_found") from None
        except http_exceptions.MethodNotAllowed as error:
            allowed = sorted(error.valid_methods or ())
            raise MethodNotAllowed(
                f"{request.method} is not allowed on {request.path}", details={"allowed": allowed}
            ) from None
        return self.routes[index], arguments

    def authenticate(self, request: flask.Request, scope: str) -> None:
        """Check the caller's API key for ``scope`` (when keys are configured), then its rate limit."""
        key = authorize(presented_key(request), self.api_keys(), scope)
        self.rate_limit(f"key:{key.name}" if key else "anonymous")

    def rate_limit(self, caller: str) -> None:
        limiter = self.rate_limiter()
        if limiter is not None:
            limiter.check(caller)

    # ------------------------------------------------------------------ the document

    @functools.cached_property
    def openapi(self) -> dict[str, Any]:
        from .openapi import document

        return document(self.routes, taxonomy=self.taxonomy(), version=self.version)


# The matched route's method and path template, for the request metrics (bounded: one per route).
_ROUTE = "triage.route"


# --------------------------------------------------------------------------- request decoding


def presented_key(request: flask.Request) -> str | None:
    presented = request.headers.get("X-API-Key")
    authorization = request.headers.get("Authorization", "")
    if presented is None and authorization[:7].lower() == "bearer ":
        presented = authorization[7:].strip()
    return presented


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw JSON body, at most ``limit`` bytes (a signature is computed over these bytes)."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json, not {request.mimetype or 'nothing'!r}")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; the limit is {limit}")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
    return raw


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}", code="invalid_json") from None


def validate(model: type[pydantic.BaseModel], value: Any, what: str = "body") -> Any:
    if what == "body" and not isinstance(value, dict):
        raise ValidationFailed("the body must be a JSON object")
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"]) or f"({what})", "message": problem["msg"]}
            for problem in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid request: {summary}", details=problems) from None


# --------------------------------------------------------------------------- answers


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> flask.Response:
    response = flask.Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def model_response(
    model: type[pydantic.BaseModel], value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> flask.Response:
    """``value`` checked against the route's response model, as JSON."""
    return json_response(model.model_validate(value).model_dump(mode="json"), status, headers)


def framework_error(error: http_exceptions.HTTPException) -> flask.Response:
    """An error functions-framework's own Flask app raised before ``api`` ran: its catch-all
    route does not match a path with a newline in it (``/tickets/a%0Ab``), for one. The same
    JSON error body as every other."""
    if error.code == 404:
        return error_response(NotFound(f"no route for {flask.request.path!r}", code="route_not_found"))
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return json_response({"error": {"code": code, "message": error.description or error.name}}, status)


def error_response(error: BaseException) -> flask.Response:
    headers: dict[str, str] = {}
    if isinstance(error, BadRequest):
        status, body = error.status_code, {"code": error.code, "message": error.message}
        if error.details is not None:
            body["details"] = error.details
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
        if isinstance(error, MethodNotAllowed) and error.details:
            headers["Allow"] = ", ".join(error.details["allowed"])
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, TransientError):
        status = 503
        body = {"code": "unavailable", "message": f"temporarily unavailable, retry later: {error}"}
        headers["Retry-After"] = str(error.retry_after_seconds)
    else:
        status, body = 500, {"code": "internal", "message": "internal error"}
    return json_response({"error": body}, status, headers)
