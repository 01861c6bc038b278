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

from ..domain import Ticket
from ..errors import Unauthorized, ValidationFailed
from ..schemas import DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS
from ..service import Submission
from ..writeback import Call, Plan, WritebackRules, confidence_of, summary_line
from . import SourceEvent, truncate, verify_hmac_sha256

SOURCE = "servicenow"
SIGNATURE_HEADER = "X-Triage-Signature"
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
    if isinstance(field, Mapping):
        found = field.get("display_value") or field.get("value") or field.get("name") or ""
        return str(found).strip()
    return "" if field is None else str(field).strip()


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


def parse_incident(body: Any, *, tenant: str) -> SourceEvent:
    if not isinstance(body, Mapping):
        raise ValidationFailed("a ServiceNow incident is a JSON object")
    # A RESTMessageV2 body is often {"record": {...}} or {"result": {...}} when built from a GlideRecord.
    for wrapper in ("record", "result", "incident"):
        if isinstance(body.get(wrapper), Mapping) and "sys_id" in body[wrapper]:
            body = body[wrapper]
            break
    sys_id = _value(body.get("sys_id"))
    if not sys_id or len(sys_id) > 64:
        raise ValidationFailed("the incident needs a sys_id (at most 64 characters)")
    description, description_cut = truncate(_value(body.get("description")), DESCRIPTION_MAX_CHARS)
    title = _value(body.get("short_description")) or description.split("\n", 1)[0] or _value(body.get("number"))
    title, title_cut = truncate(title, TITLE_MAX_CHARS)
    if not title:
        raise ValidationFailed("the incident has no short_description, description or number")
    kept = {name: _value(body.get(name)) for name in KEPT_FIELDS if _value(body.get(name))}
    metadata: dict[str, Any] = {"servicenow": {"sys_id": sys_id, **kept}}
    if title_cut or description_cut:
        metadata["truncated"] = True
    return SourceEvent(
        "create",
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


def read_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """From ``GET /api/now/table/incident/{sys_id}?sysparm_display_value=true``: ``{"result": {...}}``."""
    result = record.get("result") or {}
    return {"category": _value(result.get("category")), "assignment_group": _value(result.get("assignment_group"))}


def plan(ticket: Ticket, current: Mapping[str, str], rules: WritebackRules) -> Plan:
    """One PATCH: category and assignment group (by name, ``sysparm_input_display_value=true``)
    where ServiceNow holds nothing or what this engine wrote, and a work note either way."""
    labels = ticket.labels
    assert labels is not None and ticket.external_id
    written = dict(ticket.writeback.written) if ticket.writeback else {}
    confidence = confidence_of(ticket)
    body: dict[str, Any] = {}
    now_written: dict[str, str] = {}
    skipped: list[str] = []
    if confidence >= rules.min_confidence:
        wanted = {
            "category": rules.category_map.get(labels.category, labels.category),
            "assignment_group": labels.assignment_group,
        }
        for field, value in wanted.items():
            present = current.get(field, "")
            if present in ("", written.get(field)):
                if present != value:
                    body[field] = value
                now_written[field] = value
            else:
                skipped.append(f"{field}: {present!r} was set in ServiceNow by someone else, left alone")
        body["work_notes"] = f"Triage: {summary_line(ticket)}"
    else:
        rationale = ticket.classification.rationale if ticket.classification else ""
        body["work_notes"] = (
            f"Triage needs review: best guess {labels.category} at {confidence:.0%} confidence, below the "
            f"{rules.min_confidence:.0%} needed to set the category. {rationale}"
        ).strip()
    call = Call(
        "PATCH",
        f"/api/now/table/incident/{ticket.external_id}",
        {"sysparm_input_display_value": "true"},
        body,
    )
    return Plan((call,), now_written, tuple(skipped))
