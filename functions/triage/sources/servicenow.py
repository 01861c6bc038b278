"""ServiceNow incidents in (the JSON a Business Rule sends with RESTMessageV2) and the
Table API call that writes labels back.

ServiceNow does not sign outbound calls; the Business Rule authenticates with Basic
auth, a bearer token or an HMAC header it computes, whichever is configured. Field
values arrive as strings or as ``{"value", "display_value"}`` objects; both are read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..domain import DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS, Call, Plan, Submission, Ticket, WritebackRules
from ..domain.writeback import Draft, labels_now, review_note, summary_line
from ..errors import Unauthorized
from . import EventAction, Source, SourceEvent, truncate, validated, verify_hmac_sha256

SOURCE = "servicenow"
SIGNATURE_HEADER = "X-Triage-Signature"
DELIVERY_HEADER = "X-Delivery-Id"
WRAPPERS = ("record", "result", "incident")
KEPT_FIELDS = (
    "number",
    "category",
    "subcategory",
    "priority",
    "impact",
    "urgency",
    "assignment_group",
    "caller_id",
    "state",
    "opened_at",
    "cmdb_ci",
)


def _value(field: Any) -> str:
    """A field as a person reads it: the display value when there is one."""
    if isinstance(field, DisplayValue):
        return (field.display_value or field.value or "").strip()
    if isinstance(field, Mapping):
        found = field.get("display_value") or field.get("value") or ""
        return str(found).strip()
    return "" if field is None else str(field).strip()


# --------------------------------------------------------------------------- the webhook body


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class DisplayValue(_Open):
    """A reference or choice field as the Table API gives it with ``sysparm_display_value=all``."""

    value: str | None = None
    display_value: str | None = None
    link: str | None = None


ServiceNowValue = str | DisplayValue | None
_TEXT = {"type": "string", "pattern": r"\S"}
_READABLE = {
    "anyOf": [
        _TEXT,
        {"type": "object", "required": ["display_value"], "properties": {"display_value": _TEXT}},
        {"type": "object", "required": ["value"], "properties": {"value": _TEXT}},
    ]
}


class ServiceNowIncident(_Open):
    """The incident JSON a Business Rule sends. Values may be strings or `{value, display_value}`
    objects; the display value is read first. A title is needed: a `short_description`, else the
    first line of the `description`, else the `number`, so at least one of them must hold text."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: _READABLE}}
                for name in ("short_description", "description", "number")
            ]
        },
    )

    sys_id: str = Field(min_length=1, max_length=64, pattern=r"\S", description="One ticket per sys_id.")
    short_description: ServiceNowValue = None
    description: ServiceNowValue = None
    number: ServiceNowValue = None
    category: ServiceNowValue = None
    subcategory: ServiceNowValue = None
    priority: ServiceNowValue = None
    impact: ServiceNowValue = None
    urgency: ServiceNowValue = None
    assignment_group: ServiceNowValue = None
    caller_id: ServiceNowValue = None
    state: ServiceNowValue = None
    opened_at: ServiceNowValue = None
    cmdb_ci: ServiceNowValue = None

    @model_validator(mode="after")
    def _has_a_title(self) -> ServiceNowIncident:
        if not any(_value(getattr(self, name)) for name in ("short_description", "description", "number")):
            raise ValueError("the incident has no short_description, description or number")
        return self


def delivery_schema(incident: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a delivery, given the incident's (a reference): the incident itself, or
    wrapped as `{"record": ...}`, `{"result": ...}` or `{"incident": ...}`, what a Business Rule
    builds from a GlideRecord or a Table API answer."""
    wrapped = [{"type": "object", "required": [name], "properties": {name: incident}} for name in WRAPPERS]
    return {"anyOf": [incident, *wrapped]}


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    *,
    mode: str,
    user: str | None,
    password: str | None,
    token: str | None,
    secret: str | None,
) -> None:
    """Raise Unauthorized unless the request carries the configured credential (constant-time)."""
    if mode == "none":
        return
    if mode == "hmac":
        assert secret is not None
        verify_hmac_sha256(secret, body, headers.get(SIGNATURE_HEADER), SIGNATURE_HEADER)
        return
    authorization = headers.get("Authorization") or ""
    scheme, _, credential = authorization.partition(" ")
    if mode == "bearer":
        assert token is not None
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), token.encode()):
            raise Unauthorized("a valid bearer token is required")
        return
    if mode == "basic":
        assert user is not None and password is not None
        try:
            presented = base64.b64decode(credential.strip(), validate=True)
        except (binascii.Error, ValueError):
            presented = b""
        expected = f"{user}:{password}".encode()
        if scheme.lower() != "basic" or not hmac.compare_digest(presented, expected):
            raise Unauthorized("valid Basic credentials are required")
        return
    raise Unauthorized(f"unknown ServiceNow authentication mode {mode!r}")


def _unwrapped(body: Any) -> Any:
    if isinstance(body, Mapping):
        for wrapper in WRAPPERS:
            if isinstance(body.get(wrapper), Mapping) and "sys_id" in body[wrapper]:
                return body[wrapper]
    return body


def parse_incident(body: Any, *, tenant: str) -> SourceEvent:
    incident: ServiceNowIncident = validated(ServiceNowIncident, _unwrapped(body), "ServiceNow incident")
    sys_id = incident.sys_id.strip()
    description, description_cut = truncate(_value(incident.description), DESCRIPTION_MAX_CHARS)
    title = _value(incident.short_description) or description.split("\n", 1)[0] or _value(incident.number)
    title, title_cut = truncate(title, TITLE_MAX_CHARS)
    kept = {name: _value(getattr(incident, name)) for name in KEPT_FIELDS if _value(getattr(incident, name))}
    metadata: dict[str, Any] = {"servicenow": {"sys_id": sys_id, **kept}}
    if title_cut or description_cut:
        metadata["truncated"] = True
    return SourceEvent(
        EventAction.CREATE,
        Submission(
            title=title,
            description=description,
            source=SOURCE,
            external_id=sys_id,
            reporter=kept.get("caller_id"),
            metadata=metadata,
            tenant=tenant,
        ),
    )


# --------------------------------------------------------------------------- write-back


def read_request(ticket: Ticket) -> tuple[str, dict[str, str]]:
    """The GET that reads what ``plan`` needs to know of the incident."""
    return (
        f"/api/now/table/incident/{ticket.external_id}",
        {"sysparm_fields": "category,assignment_group", "sysparm_display_value": "true"},
    )


def read_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """From ``read_request``'s answer, ``{"result": {...}}``."""
    result = record.get("result") or {}
    return {"category": _value(result.get("category")), "assignment_group": _value(result.get("assignment_group"))}


def plan(ticket: Ticket, current: Mapping[str, str], rules: WritebackRules) -> Plan:
    """One PATCH: category and assignment group (by name, ``sysparm_input_display_value=true``)
    where ServiceNow holds nothing or what this engine wrote, and a work note either way."""
    labels = ticket.labels
    assert labels is not None and ticket.external_id
    draft = Draft.for_ticket(ticket, WRITEBACK.title)
    body: dict[str, Any] = {}
    if labels_now(ticket, rules):
        wanted = {
            "category": rules.category_map.get(labels.category, labels.category),
            "assignment_group": labels.assignment_group,
        }
        for field, value in wanted.items():
            if draft.own(field, value, current.get(field, "")):
                body[field] = value
        body["work_notes"] = f"Triage: {summary_line(ticket)}"
    else:
        body["work_notes"] = review_note(ticket, rules, to="set the category")
    call = Call(
        "PATCH",
        f"/api/now/table/incident/{ticket.external_id}",
        {"sysparm_input_display_value": "true"},
        body,
    )
    return draft.plan([call])


WRITEBACK = Source(SOURCE, "ServiceNow", read_request, read_fields, plan)
