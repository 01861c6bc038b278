"""What the engine knows of its sources, Jira and ServiceNow, one module each: the body a
webhook delivers (a pydantic model, which is both the parser's validation and what
``/openapi.json`` publishes), how a delivery is authenticated, which REST calls read and
write a ticket's fields, and the plan of what to write back.

Pure translation: nothing here does I/O or keeps state, and nothing imports the service
or HTTP layers (only the domain). The HTTP client that carries the calls is
``adapters.source_clients``; the routes that take the webhooks are ``http.webhooks``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from ..domain import Plan, Submission, Ticket, WritebackRules
from ..errors import Unauthorized, ValidationFailed


class EventAction(enum.StrEnum):
    """What a webhook delivery asks for."""

    CREATE = "create"
    UPDATE = "update"  # the ticket's text changed: re-triage it
    IGNORE = "ignore"


@dataclasses.dataclass(frozen=True)
class SourceEvent:
    """A webhook delivery, understood: a ticket to create, a ticket whose text changed, or nothing."""

    action: EventAction
    submission: Submission | None = None
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Source:
    """One source as write-back sees it: how to read a ticket's current fields, and plan the calls."""

    name: str  # the ticket's ``source`` value: "jira", "servicenow"
    title: str  # as a person names it: "Jira", "ServiceNow"
    read_request: Callable[[Ticket], tuple[str, Mapping[str, str]]]  # path and query of the GET
    read_fields: Callable[[Mapping[str, Any]], Mapping[str, Any]]  # the GET's answer -> current values
    plan: Callable[[Ticket, Mapping[str, Any], WritebackRules], Plan]


def validated(model: type[pydantic.BaseModel], body: Any, what: str) -> Any:
    """``body`` checked against the source's published body model (422 with each problem)."""
    if not isinstance(body, Mapping):
        raise ValidationFailed(f"a {what} is a JSON object")
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"]) or "(body)", "message": problem["msg"]}
            for problem in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid {what}: {summary}", details=problems) from None


def verify_hmac_sha256(secret: str, body: bytes, presented: str | None, header: str) -> None:
    """Check ``sha256=<hex>`` (or a bare hex or base64 digest) against HMAC-SHA256 of the raw
    body, in constant time. Raises Unauthorized naming the header."""
    if not presented:
        raise Unauthorized(f"missing {header} signature")
    value = presented.strip()
    if value.lower().startswith("sha256="):
        value = value[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    candidates = []
    try:
        candidates.append(bytes.fromhex(value))
    except ValueError:
        pass
    try:
        candidates.append(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        pass
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise Unauthorized(f"the {header} signature does not match the body")


def truncate(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)
