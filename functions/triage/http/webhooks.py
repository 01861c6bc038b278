"""Routes that take Jira's and ServiceNow's webhooks: authenticate the delivery with the
source's own credential (or an API key when none is configured), parse it with the
source's module, and hand it to ``service.ingest_event``."""

from __future__ import annotations

import flask
from pydantic import SecretStr

from .. import service
from ..config import Settings
from ..service import EventOutcome, EventResult
from ..sources import SourceEvent, jira, servicenow, verify_hmac_sha256
from . import schemas
from .app import Context, Header, Route, decode_json, json_response, model_response
from .tickets import status_url


def _jira_signs(settings: Settings) -> bool:
    return settings.jira_webhook_secret is not None


def _servicenow_authenticates(settings: Settings) -> bool:
    return settings.servicenow_webhook_auth != "none"


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _delivery_id(context: Context, header: str) -> str | None:
    return (context.request.headers.get(header) or "").strip()[:200] or None


def _take(context: Context, event: SourceEvent, delivery_id: str | None) -> flask.Response:
    result: EventResult = context.use(service.ingest_event)(event, delivery_id=delivery_id)
    if result.ticket_id is None:
        return json_response({"action": result.action, "reason": result.reason}, 200)
    url = status_url(context, result.ticket_id)
    body = {
        "action": result.action,
        "ticket_id": result.ticket_id,
        # A concurrent duplicate may arrive before the first delivery's ticket is visible.
        "status": result.ticket.status if result.ticket else "Pending",
        "status_url": url,
        "duplicate": result.action is EventOutcome.DUPLICATE,
    }
    if result.reason:
        body["reason"] = result.reason
    taken = {EventOutcome.CREATED, EventOutcome.RETRIAGED, EventOutcome.DUPLICATE}
    return model_response(schemas.WebhookResult, body, 202 if result.action in taken else 200, {"Location": url})


def jira_webhook(context: Context) -> flask.Response:
    settings = context.settings
    raw = context.raw_body(settings.webhook_max_body_bytes)
    if _jira_signs(settings):
        secret = settings.jira_webhook_secret.get_secret_value()  # type: ignore[union-attr]
        verify_hmac_sha256(secret, raw, context.request.headers.get(jira.SIGNATURE_HEADER), jira.SIGNATURE_HEADER)
        context.rate_limit("webhook:jira")
    event = jira.parse_webhook(decode_json(raw), tenant=settings.jira_tenant)
    return _take(context, event, _delivery_id(context, jira.DELIVERY_HEADER))


def servicenow_webhook(context: Context) -> flask.Response:
    settings = context.settings
    raw = context.raw_body(settings.webhook_max_body_bytes)
    if _servicenow_authenticates(settings):
        servicenow.authenticate(
            context.request.headers,
            raw,
            mode=settings.servicenow_webhook_auth,
            user=settings.servicenow_webhook_user,
            password=_secret(settings.servicenow_webhook_password),
            token=_secret(settings.servicenow_webhook_token),
            secret=_secret(settings.servicenow_webhook_secret),
        )
        context.rate_limit("webhook:servicenow")
    event = servicenow.parse_incident(decode_json(raw), tenant=settings.servicenow_tenant or settings.default_tenant)
    return _take(context, event, _delivery_id(context, servicenow.DELIVERY_HEADER))


_ANSWERS = {
    202: (schemas.WebhookResult, "Ticket created, re-triaged, or already received"),
    200: (schemas.WebhookResult, "Acknowledged and ignored (another event, or no change to the text)"),
}
ROUTES = [
    Route(
        "POST",
        "/webhooks/jira",
        jira_webhook,
        "A Jira webhook: creates or re-triages the issue's ticket",
        description=(
            "With JIRA_WEBHOOK_SECRET set, `X-Hub-Signature: sha256=<HMAC-SHA256 of the body>` is required; "
            "otherwise an API key. `X-Atlassian-Webhook-Identifier` deduplicates retries. The body is Jira's "
            "own: fields this engine does not read may hold anything."
        ),
        scope="submit",
        source_credential=_jira_signs,
        body=jira.JiraWebhook,
        headers=(
            Header(jira.SIGNATURE_HEADER, "`sha256=<hex HMAC-SHA256 of the raw body>` when JIRA_WEBHOOK_SECRET is set"),
            Header(jira.DELIVERY_HEADER, "The same across retries of one delivery: a retry is answered once"),
        ),
        responses=_ANSWERS,
    ),
    Route(
        "POST",
        "/webhooks/servicenow",
        servicenow_webhook,
        "A ServiceNow incident sent by a Business Rule; one ticket per sys_id",
        description=(
            "Authenticated as SERVICENOW_WEBHOOK_AUTH says: Basic, a bearer token, or "
            f"`{servicenow.SIGNATURE_HEADER}: sha256=<HMAC-SHA256 of the body>`; otherwise an API key."
        ),
        scope="submit",
        source_credential=_servicenow_authenticates,
        body=servicenow.ServiceNowIncident,
        body_schema=servicenow.delivery_schema,
        headers=(
            Header(servicenow.SIGNATURE_HEADER, "`sha256=<HMAC-SHA256 of the raw body>` in HMAC mode"),
            Header(servicenow.DELIVERY_HEADER, "An id the Business Rule keeps across its retries"),
        ),
        responses={202: (schemas.WebhookResult, "Ticket created, or already received")},
    ),
]
