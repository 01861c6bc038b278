"""The OpenAPI 3.1 description served at ``/openapi.json``, generated from ``schemas``."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from . import schemas
from .domain import Status

_MODELS = (
    (schemas.ClassifyRequest, "validation"),
    (schemas.FeedbackRequest, "validation"),
    (schemas.ClassifyAccepted, "serialization"),
    (schemas.TicketView, "serialization"),
    (schemas.ErrorBody, "serialization"),
    (schemas.Health, "serialization"),
    (schemas.JiraWebhook, "validation"),
    (schemas.ServiceNowIncident, "validation"),
    (schemas.WebhookResult, "serialization"),
    (schemas.ReconcileRequest, "validation"),
    (schemas.ReconcileResult, "serialization"),
    (schemas.ReplayRequest, "validation"),
    (schemas.ReplayResult, "serialization"),
    (schemas.FailedList, "serialization"),
    (schemas.TicketList, "serialization"),
    (schemas.Stats, "serialization"),
)

_ERRORS = {
    "400": "Malformed JSON or header",
    "401": "Missing or invalid API key",
    "403": "The API key lacks this route's scope",
    "404": "No such ticket or route",
    "405": "Method not allowed on this route",
    "409": "Idempotency-Key reused with a different body",
    "413": "Body larger than MAX_BODY_BYTES",
    "415": "Body is not application/json",
    "422": "Body does not fit the schema, or labels outside the taxonomy",
    "429": "Rate limit exceeded; retry after Retry-After seconds",
    "503": "Firestore, Pub/Sub or Chroma unavailable; retry after Retry-After seconds",
}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json(schemas.ErrorBody, _ERRORS[code]) for code in codes}


_TICKET_ID = {
    "name": "ticket_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


@functools.cache
def document(version: str) -> dict[str, Any]:
    _, definitions = models_json_schema(_MODELS, ref_template="#/components/schemas/{model}")
    body_errors = ("400", "401", "405", "413", "415", "422", "503")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ticket triage engine",
            "version": version,
            "description": (
                "Accepts IT tickets, classifies them in the background (from a semantic memory of past "
                "tickets when the evidence is strong, else with an LLM) and learns from human corrections."
            ),
        },
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": {
            "/classify": {
                "post": {
                    "operationId": "classify",
                    "summary": "Submit a ticket; answers 202 once it is stored and queued",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Repeating a request with the same key returns the same ticket.",
                            "schema": {"type": "string", "maxLength": schemas.IDEMPOTENCY_KEY_MAX_CHARS},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(schemas.ClassifyRequest)}},
                    },
                    "responses": {
                        "202": {
                            **_json(schemas.ClassifyAccepted, "Stored as Pending and queued for classification"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        **_errors(*body_errors, "409"),
                    },
                }
            },
            "/tickets/{ticket_id}": {
                "get": {
                    "operationId": "getTicket",
                    "summary": "A ticket's status, labels and how they were reached",
                    "parameters": [_TICKET_ID],
                    "responses": {
                        "200": _json(schemas.TicketView, "The ticket"),
                        **_errors("401", "404", "405", "503"),
                    },
                }
            },
            "/tickets/{ticket_id}/feedback": {
                "post": {
                    "operationId": "recordFeedback",
                    "summary": "Correct a ticket's labels; the memory learns at once",
                    "parameters": [_TICKET_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(schemas.FeedbackRequest)}},
                    },
                    "responses": {
                        "200": _json(schemas.TicketView, "The corrected ticket"),
                        **_errors(*body_errors, "404"),
                    },
                }
            },
            "/webhooks/jira": {
                "post": {
                    "operationId": "jiraWebhook",
                    "summary": "A Jira webhook: creates or re-triages the issue's ticket",
                    "description": (
                        "With JIRA_WEBHOOK_SECRET set, `X-Hub-Signature: sha256=<HMAC-SHA256 of the body>` is "
                        "required; otherwise an API key. `X-Atlassian-Webhook-Identifier` deduplicates retries."
                    ),
                    "security": [{}, {"ApiKey": []}],
                    "parameters": [
                        {"name": "X-Hub-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
                        {
                            "name": "X-Atlassian-Webhook-Identifier",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(schemas.JiraWebhook)}},
                    },
                    "responses": {
                        "202": _json(schemas.WebhookResult, "Ticket created, re-triaged, or already received"),
                        "200": _json(schemas.WebhookResult, "Acknowledged and ignored (another event, no text change)"),
                        **_errors(*body_errors),
                    },
                }
            },
            "/webhooks/servicenow": {
                "post": {
                    "operationId": "servicenowWebhook",
                    "summary": "A ServiceNow incident sent by a Business Rule; deduplicated by sys_id",
                    "description": (
                        "Authenticated as SERVICENOW_WEBHOOK_AUTH says: Basic, a bearer token, or "
                        "`X-Triage-Signature: sha256=<HMAC-SHA256 of the body>`; otherwise an API key."
                    ),
                    "security": [{}, {"ApiKey": []}, {"Bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(schemas.ServiceNowIncident)}},
                    },
                    "responses": {
                        "202": _json(schemas.WebhookResult, "Ticket created, or already received"),
                        **_errors(*body_errors),
                    },
                }
            },
            "/admin/reconcile": {
                "post": {
                    "operationId": "reconcile",
                    "summary": "Restart stopped work: stuck Pending tickets, pending write-backs, unremembered tickets",
                    "description": "Admin scope. Meant for Cloud Scheduler; `triage reconcile` does the same.",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref(schemas.ReconcileRequest)}},
                    },
                    "responses": {
                        "200": _json(schemas.ReconcileResult, "What was restarted"),
                        **_errors(*body_errors, "403"),
                    },
                }
            },
            "/admin/failed": {
                "get": {
                    "operationId": "listFailed",
                    "summary": "Failed tickets with their last error, oldest first (admin scope)",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        }
                    ],
                    "responses": {
                        "200": _json(schemas.FailedList, "Failed tickets"),
                        **_errors("401", "403", "422", "503"),
                    },
                }
            },
            "/admin/replay": {
                "post": {
                    "operationId": "replayFailed",
                    "summary": "Send Failed tickets through the pipeline again (admin scope)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(schemas.ReplayRequest)}},
                    },
                    "responses": {
                        "200": _json(schemas.ReplayResult, "Replayed ticket ids"),
                        **_errors(*body_errors, "403"),
                    },
                }
            },
            "/tickets": {
                "get": {
                    "operationId": "listTickets",
                    "summary": "Recent tickets, newest first; review=true keeps flagged or low-confidence ones",
                    "parameters": [
                        _query("status", {"type": "string", "enum": [s.value for s in Status]}),
                        _query("review", {"type": "string", "enum": ["true", "false"]}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    ],
                    "responses": {
                        "200": _json(schemas.TicketList, "Tickets"),
                        **_errors("401", "403", "422", "429", "503"),
                    },
                }
            },
            "/stats": {
                "get": {
                    "operationId": "stats",
                    "summary": "What the engine did over a window, from Firestore aggregation queries",
                    "parameters": [
                        _query("hours", {"type": "integer", "minimum": 1, "maximum": 2160}),
                        _query("buckets", {"type": "integer", "minimum": 1, "maximum": 48}),
                    ],
                    "responses": {
                        "200": _json(schemas.Stats, "Figures"),
                        **_errors("401", "403", "422", "429", "503"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "This instance's Prometheus metrics (text exposition format)",
                    "responses": {
                        "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **_errors("401", "403", "429"),
                    },
                }
            },
            "/console": {
                "get": {
                    "operationId": "console",
                    "summary": "The review console (an HTML page; it asks for an API key and holds no data)",
                    "security": [],
                    "responses": {
                        "200": {"description": "Page", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness; needs no API key",
                    "security": [],
                    "responses": {"200": _json(schemas.Health, "Alive")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors("401"),
                    },
                }
            },
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
