"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the route table.

Every path, parameter, body and answer comes from a ``Route`` and its pydantic models, so
the document cannot name a route the server lacks or miss one it has. The taxonomy's
names become the enums of the labels a reviewer may send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema

from ..domain import LABEL_NAMES, Taxonomy
from . import schemas
from .app import Route

_ERRORS = {
    400: "Malformed JSON or header",
    401: "Missing or invalid API key",
    403: "The API key lacks this route's scope",
    404: "No such ticket or route",
    405: "Method not allowed on this route",
    409: "Idempotency-Key reused with a different body",
    413: "Body larger than the route's limit",
    415: "Body is not application/json",
    422: "Body or query does not fit the schema, or labels outside the taxonomy",
    429: "Rate limit exceeded; retry after Retry-After seconds",
    503: "Firestore, Pub/Sub or Chroma unavailable; retry after Retry-After seconds",
}
_RULE_ARGUMENT = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
REF = "#/components/schemas/{model}"


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type | None, description: str) -> dict[str, Any]:
    schema = _ref(model) if model is not None else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answer(kind: type[pydantic.BaseModel] | str | None, description: str) -> dict[str, Any]:
    if isinstance(kind, str):  # a media type of a non-JSON answer
        return {"description": description, "content": {kind: {"schema": {"type": "string"}}}}
    return _json(kind, description)


def error_statuses(route: Route) -> list[int]:
    """The failures a route can answer with, derived from what it takes."""
    statuses = {405, *route.errors}
    if route.scope is not None:
        statuses |= {401, 403, 429, 503}
    if route.body is not None:
        statuses |= {400, 413, 415, 422}
    if route.query is not None:
        statuses.add(422)
    if route.headers:
        statuses.add(400)
    if _RULE_ARGUMENT.search(route.path):
        statuses.add(404)
    return sorted(statuses)


def _parameters(route: Route) -> list[dict[str, Any]]:
    path_schema = {"type": "string", "pattern": schemas.TICKET_ID_PATTERN}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": path_schema}
        for name in _RULE_ARGUMENT.findall(route.path)
    ]
    if route.query is not None:
        schema = route.query.model_json_schema(ref_template=REF)
        for name, field in schema.get("properties", {}).items():
            description = field.pop("description", None)
            field.pop("title", None)
            parameter = {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": field}
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    for header in route.headers:
        parameters.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": header.schema(),
            }
        )
    return parameters


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if route.description:
        operation["description"] = route.description
    if route.scope is None:
        operation["security"] = []
    elif route.source_credential is not None:
        operation["security"] = [{}, {"ApiKey": []}, {"Bearer": []}]  # the source's credential, or a key
    parameters = _parameters(route)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        schema = _ref(route.body)
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": route.body_schema(schema) if route.body_schema else schema}},
        }
    responses = {str(status): _answer(*answer) for status, answer in route.responses.items()}
    for status in responses:
        if status == "202":
            responses[status]["headers"] = {"Location": {"schema": {"type": "string"}}}
    responses |= {str(status): _json(schemas.ErrorBody, _ERRORS[status]) for status in error_statuses(route)}
    operation["responses"] = responses
    return operation


def _models(routes: Sequence[Route]) -> list[tuple[type[pydantic.BaseModel], str]]:
    models: dict[type[pydantic.BaseModel], str] = {schemas.ErrorBody: "serialization"}
    for route in routes:
        if route.body is not None:
            models[route.body] = "validation"
        for kind, _ in route.responses.values():
            if isinstance(kind, type):
                models[kind] = "serialization"
    return list(models.items())


def _label_enums(definitions: dict[str, Any], taxonomy: Taxonomy) -> None:
    """The reviewer's labels are checked against the configured taxonomy: say so in the schema."""
    feedback = definitions.get(schemas.FeedbackRequest.__name__)
    if feedback is None:
        return
    for label in LABEL_NAMES:
        field = feedback["properties"][label]
        names = list(taxonomy.names(label))
        if "anyOf" in field:  # optional: a name or null
            field["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
        else:
            field.clear()
            field.update({"type": "string", "enum": names})


def document(routes: Sequence[Route], *, taxonomy: Taxonomy, version: str) -> dict[str, Any]:
    _, definitions = models_json_schema(_models(routes), ref_template=REF)
    components = definitions.get("$defs", {})
    _label_enums(components, taxonomy)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _RULE_ARGUMENT.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
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
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
