"""The HTTP API behind the ``api`` entry point: routing, auth, body parsing, errors.

Each handler decodes the request into service arguments, calls the service and
encodes the answer; every failure becomes ``{"error": {"code", "message"}}`` with
the right status. This module must never hold business rules or talk to a client
library: the service and the bootstrap do that.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import pydantic
from werkzeug import exceptions as http_exceptions
from werkzeug.routing import Map, Rule

from . import bootstrap, logs, metrics, openapi, schemas, service
from .domain import Status, Taxonomy, Ticket, ticket_to_record
from .errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TransientError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from .security import authorize

log = logging.getLogger(__name__)

ROUTES = Map(
    [
        Rule("/classify", methods=["POST"], endpoint="classify"),
        Rule("/tickets", methods=["GET"], endpoint="list_tickets"),
        Rule("/tickets/<ticket_id>", methods=["GET"], endpoint="get_ticket"),
        Rule("/tickets/<ticket_id>/feedback", methods=["POST"], endpoint="feedback"),
        Rule("/webhooks/jira", methods=["POST"], endpoint="jira_webhook"),
        Rule("/webhooks/servicenow", methods=["POST"], endpoint="servicenow_webhook"),
        Rule("/admin/reconcile", methods=["POST"], endpoint="reconcile"),
        Rule("/admin/failed", methods=["GET"], endpoint="failed"),
        Rule("/admin/replay", methods=["POST"], endpoint="replay"),
        Rule("/stats", methods=["GET"], endpoint="stats"),
        Rule("/metrics", methods=["GET"], endpoint="metrics"),
        Rule("/console", methods=["GET"], endpoint="console"),
        Rule("/healthz", methods=["GET"], endpoint="healthz"),
        Rule("/openapi.json", methods=["GET"], endpoint="openapi"),
    ],
    strict_slashes=False,
)
# The console page holds no data: it asks for an API key and calls the routes below with it.
PUBLIC_ENDPOINTS = frozenset({"healthz", "console"})
SCOPES = {
    "classify": "submit",
    "get_ticket": "read",
    "list_tickets": "read",
    "stats": "read",
    "metrics": "read",
    "feedback": "feedback",
    "openapi": "read",
    "jira_webhook": "submit",
    "servicenow_webhook": "submit",
}
# Webhooks authenticate with their source's own credential when one is configured (Jira
# cannot send an API key header), else with an API key like every other route.
WEBHOOK_ENDPOINTS = frozenset({"jira_webhook", "servicenow_webhook"})


def error_response(error: BadRequest | TransientError | Exception) -> flask.Response:
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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def handle(request: flask.Request) -> flask.Response:
    trace = logs.bind_trace(request.headers, bootstrap.settings().google_cloud_project)
    try:
        return _handle(request)
    finally:
        logs.TRACE.reset(trace)


def _handle(request: flask.Request) -> flask.Response:
    try:
        try:
            endpoint, arguments = ROUTES.bind_to_environ(request.environ).match()
        except http_exceptions.NotFound:
            raise NotFound(f"no route for {request.path}", code="route_not_found") from None
        except http_exceptions.MethodNotAllowed as error:
            allowed = sorted(error.valid_methods or ())
            raise MethodNotAllowed(
                f"{request.method} is not allowed on {request.path}", details={"allowed": allowed}
            ) from None
        if endpoint not in PUBLIC_ENDPOINTS | WEBHOOK_ENDPOINTS:
            authenticate(request, SCOPES.get(endpoint, "admin"))
        return HANDLERS[endpoint](request, **arguments)
    except (BadRequest, TransientError) as error:
        if isinstance(error, TransientError):
            log.warning("request failed: dependency unavailable", extra={"path": request.path, "error": str(error)})
        return error_response(error)
    except Exception as error:
        log.exception("request failed", extra={"path": request.path})
        return error_response(error)


# --------------------------------------------------------------------------- request decoding


def presented_key(request: flask.Request) -> str | None:
    presented = request.headers.get("X-API-Key")
    authorization = request.headers.get("Authorization", "")
    if presented is None and authorization[:7].lower() == "bearer ":
        presented = authorization[7:].strip()
    return presented


def authenticate(request: flask.Request, scope: str) -> None:
    """Check the caller's API key for ``scope`` (when keys are configured), then its rate limit."""
    settings = bootstrap.settings()
    key = authorize(presented_key(request), settings.api_key_list, scope)
    rate_limit(f"key:{key.name}" if key else "anonymous")


def rate_limit(caller: str) -> None:
    limiter = bootstrap.rate_limiter()
    if limiter is not None:
        limiter.check(caller)


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


def read_json(request: flask.Request) -> Any:
    return decode_json(read_body(request, bootstrap.settings().max_body_bytes))


def parse(model: type[pydantic.BaseModel], request: flask.Request) -> Any:
    body = read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"]) or "(body)", "message": problem["msg"]}
            for problem in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid request: {summary}", details=problems) from None


def idempotency_key(request: flask.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > schemas.IDEMPOTENCY_KEY_MAX_CHARS or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {schemas.IDEMPOTENCY_KEY_MAX_CHARS} printable characters",
            code="invalid_idempotency_key",
        )
    return key


# --------------------------------------------------------------------------- views


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    record = ticket_to_record(ticket)
    classification = record["classification"]
    if classification:
        classification = {**classification.pop("labels"), **classification}
    corrections = [{**c.pop("labels"), **c} for c in record["corrections"]]
    labels = ticket.labels
    view = schemas.TicketView.model_validate(
        {
            **record,
            "labels": labels.as_dict() if labels else None,
            "classification": classification,
            "corrections": corrections,
        }
    )
    return view.model_dump(mode="json")


def status_url(request: flask.Request, ticket_id: str) -> str:
    base = bootstrap.settings().public_base_url or request.host_url
    return f"{base.rstrip('/')}/tickets/{ticket_id}"


# --------------------------------------------------------------------------- handlers


def classify(request: flask.Request) -> flask.Response:
    body: schemas.ClassifyRequest = parse(schemas.ClassifyRequest, request)
    key = idempotency_key(request)
    submission = service.Submission(
        title=body.title,
        description=body.description,
        source=body.source,
        external_id=body.external_id,
        reporter=body.reporter,
        metadata=body.metadata,
        idempotency_key=key,
        tenant=bootstrap.settings().default_tenant,
    )
    result = service.ingest(
        submission,
        store=bootstrap.store(),
        publisher=bootstrap.publisher(),
        clock=bootstrap.clock(),
        in_flight_for=timedelta(seconds=2 * bootstrap.settings().publish_timeout_seconds),
        redact=bootstrap.storage_redactor(),
    )
    url = status_url(request, result.ticket.ticket_id)
    accepted = schemas.ClassifyAccepted(
        ticket_id=result.ticket.ticket_id,
        status=result.ticket.status.value,
        status_url=url,
        duplicate=not result.created,
    )
    return json_response(accepted.model_dump(mode="json"), 202, {"Location": url})


def _ticket_id(ticket_id: str) -> str:
    if not (0 < len(ticket_id) <= 64 and all(c.isalnum() or c in "-_" for c in ticket_id)):
        raise NotFound(f"no ticket with id {ticket_id!r}")
    return ticket_id


def get_ticket(request: flask.Request, ticket_id: str) -> flask.Response:
    ticket = service.get_ticket(_ticket_id(ticket_id), store=bootstrap.store())
    return json_response(ticket_view(ticket))


def feedback(request: flask.Request, ticket_id: str) -> flask.Response:
    body: schemas.FeedbackRequest = parse(schemas.FeedbackRequest, request)
    ticket = service.record_feedback(
        _ticket_id(ticket_id),
        service.Feedback(
            category=body.category,
            priority=body.priority,
            assignment_group=body.assignment_group,
            reviewer=body.reviewer,
            comment=body.comment,
        ),
        store=bootstrap.store(),
        memory=bootstrap.memory(),
        publisher=bootstrap.publisher(),
        taxonomy=bootstrap.taxonomy(),
        clock=bootstrap.clock(),
        writeback=bootstrap.writeback_queue(),
    )
    return json_response(ticket_view(ticket))


def _accepted(request: flask.Request, result: service.EventResult) -> flask.Response:
    if result.ticket_id is None:
        return json_response({"action": result.action, "reason": result.reason}, 200)
    url = status_url(request, result.ticket_id)
    body = {
        "action": result.action,
        "ticket_id": result.ticket_id,
        # A concurrent duplicate may arrive before the first delivery's ticket is visible.
        "status": result.ticket.status.value if result.ticket else "Pending",
        "status_url": url,
        "duplicate": result.action == "duplicate",
    }
    if result.reason:
        body["reason"] = result.reason
    status = 202 if result.action in {"created", "retriaged", "duplicate"} else 200
    return json_response(body, status, {"Location": url})


def _take_event(event: Any, delivery_id: str | None) -> service.EventResult:
    settings = bootstrap.settings()
    return service.ingest_event(
        event.action,
        event.submission,
        delivery_id=delivery_id,
        reason=event.reason,
        store=bootstrap.store(),
        publisher=bootstrap.publisher(),
        clock=bootstrap.clock(),
        in_flight_for=timedelta(seconds=2 * settings.publish_timeout_seconds),
        redact=bootstrap.storage_redactor(),
    )


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def jira_webhook(request: flask.Request) -> flask.Response:
    from .integrations import jira, verify_hmac_sha256

    settings = bootstrap.settings()
    raw = read_body(request, settings.webhook_max_body_bytes)
    if settings.jira_webhook_secret is not None:
        secret = settings.jira_webhook_secret.get_secret_value()
        verify_hmac_sha256(secret, raw, request.headers.get("X-Hub-Signature"), "X-Hub-Signature")
        rate_limit("webhook:jira")
    else:
        authenticate(request, "submit")
    event = jira.parse_webhook(decode_json(raw), tenant=settings.jira_tenant)
    delivery = (request.headers.get("X-Atlassian-Webhook-Identifier") or "").strip()[:200] or None
    return _accepted(request, _take_event(event, delivery))


def servicenow_webhook(request: flask.Request) -> flask.Response:
    from .integrations import servicenow

    settings = bootstrap.settings()
    raw = read_body(request, settings.webhook_max_body_bytes)
    if settings.servicenow_webhook_auth == "none":
        authenticate(request, "submit")
    else:
        servicenow.authenticate(
            request.headers,
            raw,
            mode=settings.servicenow_webhook_auth,
            user=settings.servicenow_webhook_user,
            password=_secret(settings.servicenow_webhook_password),
            token=_secret(settings.servicenow_webhook_token),
            secret=_secret(settings.servicenow_webhook_secret),
        )
        rate_limit("webhook:servicenow")
    event = servicenow.parse_incident(decode_json(raw), tenant=settings.servicenow_tenant or settings.default_tenant)
    delivery = (request.headers.get("X-Delivery-Id") or "").strip()[:200] or None
    return _accepted(request, _take_event(event, delivery))


def _optional_body(model: type[pydantic.BaseModel], request: flask.Request) -> Any:
    if not request.content_length and request.mimetype != "application/json":
        return model()
    return parse(model, request)


def reconcile(request: flask.Request) -> flask.Response:
    body: schemas.ReconcileRequest = _optional_body(schemas.ReconcileRequest, request)
    report = bootstrap.reconcile(older_than_seconds=body.older_than_seconds, limit=body.limit)
    return json_response(schemas.ReconcileResult.model_validate(report.as_dict()).model_dump())


def failed(request: flask.Request) -> flask.Response:
    try:
        limit = min(max(int(request.args.get("limit", 50)), 1), 1000)
    except ValueError:
        raise ValidationFailed("limit must be a number") from None
    tickets = bootstrap.store().find(status=Status.FAILED, limit=limit)
    listed = schemas.FailedList(
        tickets=[
            schemas.FailedTicket(
                ticket_id=t.ticket_id,
                source=t.source,
                external_id=t.external_id,
                attempts=t.attempts,
                last_error=t.last_error,
                updated_at=t.updated_at,
            )
            for t in tickets
        ]
    )
    return json_response(listed.model_dump(mode="json"))


def replay(request: flask.Request) -> flask.Response:
    body: schemas.ReplayRequest = parse(schemas.ReplayRequest, request)
    if not body.all and not body.ticket_ids:
        raise ValidationFailed("give ticket_ids, or all: true")
    replayed = service.replay_failed(
        None if body.all else body.ticket_ids,
        store=bootstrap.store(),
        publisher=bootstrap.publisher(),
        clock=bootstrap.clock(),
        limit=body.limit,
    )
    return json_response(schemas.ReplayResult(replayed=replayed).model_dump())


def _int_arg(request: flask.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}")
    return value


def list_tickets(request: flask.Request) -> flask.Response:
    """Recent tickets, newest first; ``review=true`` keeps those a human should look at."""
    limit = _int_arg(request, "limit", 50, 1, 500)
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        raise ValidationFailed(f"status must be one of {', '.join(s.value for s in Status)}")
    review = request.args.get("review", "false").lower()
    if review not in {"true", "false"}:
        raise ValidationFailed("review must be true or false")
    store = bootstrap.store()
    threshold = bootstrap.settings().review_below_confidence
    if review == "true":
        candidates = [
            t
            for t in store.recent(limit=min(limit * 5, 1000))
            if t.status in (Status.CLASSIFIED_BY_AI, Status.CLASSIFIED_BY_CACHE)
            and t.classification is not None
            and (t.classification.needs_review or t.classification.confidence < threshold)
        ][:limit]
    else:
        candidates = store.recent(status=Status(status) if status else None, limit=limit)
    return json_response({"tickets": [ticket_view(t) for t in candidates]})


def stats(request: flask.Request) -> flask.Response:
    settings = bootstrap.settings()
    figures = service.stats(
        store=bootstrap.store(),
        now=bootstrap.clock()(),
        window=timedelta(hours=_int_arg(request, "hours", 24, 1, 24 * 90)),
        buckets=_int_arg(request, "buckets", 12, 1, 48),
        price_per_1k_tokens=settings.llm_price_per_1k_tokens,
        tokens_per_call=settings.llm_tokens_per_call,
    )
    return json_response(schemas.Stats.model_validate(figures).model_dump())


def metrics_text(request: flask.Request) -> flask.Response:
    body, content_type = metrics.exposition()
    return flask.Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})


CONSOLE = Path(__file__).with_name("console.html")


@functools.lru_cache(maxsize=1)
def _console_page(taxonomy: Taxonomy) -> str:
    """The page with the taxonomy's names in it: read and built once per process (per taxonomy)."""
    names = {"categories": list(taxonomy.category_names), "priorities": list(taxonomy.priority_names)}
    return CONSOLE.read_text(encoding="utf-8").replace("__TAXONOMY__", json.dumps(names).replace("</", "<\\/"))


def console(request: flask.Request) -> flask.Response:
    response = flask.Response(_console_page(bootstrap.taxonomy()), status=200, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    # The page's own script and style only; it talks to this API and nothing else.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    return response


def healthz(request: flask.Request) -> flask.Response:
    return json_response(schemas.Health(status="ok", version=bootstrap.VERSION).model_dump())


def openapi_document(request: flask.Request) -> flask.Response:
    return json_response(openapi.document(bootstrap.VERSION))


HANDLERS: dict[str, Callable[..., flask.Response]] = {
    "classify": classify,
    "get_ticket": get_ticket,
    "list_tickets": list_tickets,
    "stats": stats,
    "metrics": metrics_text,
    "console": console,
    "feedback": feedback,
    "jira_webhook": jira_webhook,
    "servicenow_webhook": servicenow_webhook,
    "reconcile": reconcile,
    "failed": failed,
    "replay": replay,
    "healthz": healthz,
    "openapi": openapi_document,
}
