"""Jira Cloud and Data Center webhooks in, and the Jira REST calls that write labels back.

Webhook bodies use the REST v2 shapes (the description is a plain string); a body
built from v3 carries Atlassian Document Format instead, read here as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..domain import Ticket
from ..errors import ValidationFailed
from ..schemas import DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS
from ..service import Submission
from ..writeback import Call, Plan, WritebackRules, confidence_of, summary_line
from . import SourceEvent, truncate

SOURCE = "jira"
TEXT_FIELDS = frozenset({"summary", "description"})
_BLOCKS = frozenset(
    {"paragraph", "heading", "blockquote", "codeBlock", "listItem", "tableRow", "rule", "panel", "mediaSingle"}
)


def adf_to_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format node: text runs, mentions and links kept,
    block boundaries and hard breaks as new lines."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(adf_to_text(child) for child in node)
    if not isinstance(node, Mapping):
        return ""
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    if kind in {"mention", "emoji", "status", "date"}:
        return str(attrs.get("text") or attrs.get("shortName") or attrs.get("timestamp") or "")
    if kind in {"inlineCard", "blockCard"}:
        return str(attrs.get("url", ""))
    inner = adf_to_text(node.get("content") or [])
    if kind in _BLOCKS:
        return inner.rstrip("\n") + "\n"
    return inner


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping) and value.get("type") == "doc":
        return re.sub(r"\n{3,}", "\n\n", adf_to_text(value)).strip()
    return str(value).strip()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = value.get("name") or value.get("value")
        return str(found) if found else None
    return str(value) if value else None


def _person(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    for key in ("emailAddress", "displayName", "accountId", "name", "key"):
        if value.get(key):
            return str(value[key])[:256]
    return None


def parse_webhook(body: Any, *, tenant: str | None) -> SourceEvent:
    """Understand a webhook body. ``tenant``: a fixed tenant, or None for the issue's project."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("a Jira webhook body is a JSON object")
    event = str(body.get("webhookEvent") or "")
    if event not in {"jira:issue_created", "jira:issue_updated"}:
        return SourceEvent("ignore", reason=f"event {event or '(none)'} is not triaged")
    issue = body.get("issue")
    if not isinstance(issue, Mapping) or not issue.get("id") or not isinstance(issue.get("fields"), Mapping):
        raise ValidationFailed("the webhook carries no issue with an id and fields")
    fields = issue["fields"]
    if event == "jira:issue_updated":
        changelog = body.get("changelog")
        items = _list(changelog.get("items")) if isinstance(changelog, Mapping) else []
        changed = {str(i.get("fieldId") or i.get("field") or "").lower() for i in items if isinstance(i, Mapping)}
        if not changed & TEXT_FIELDS:
            return SourceEvent("ignore", reason="neither summary nor description changed")

    title, title_cut = truncate(_text(fields.get("summary")), TITLE_MAX_CHARS)
    description, description_cut = truncate(_text(fields.get("description")), DESCRIPTION_MAX_CHARS)
    if not title:
        title, _ = truncate(description.split("\n", 1)[0], TITLE_MAX_CHARS)
    if not title:
        raise ValidationFailed("the issue has neither a summary nor a description")
    project = fields.get("project") if isinstance(fields.get("project"), Mapping) else {}
    key = str(issue.get("key") or "")
    metadata: dict[str, Any] = {
        "jira": {
            "key": key,
            "project": project.get("key"),
            "issue_type": _name(fields.get("issuetype")),
            "status": _name(fields.get("status")),
            "priority": _name(fields.get("priority")),
            "labels": [str(label) for label in _list(fields.get("labels"))][:50],
            "components": [c for c in (_name(c) for c in _list(fields.get("components"))) if c][:50],
            "self": issue.get("self"),
            "event": event,
        }
    }
    if title_cut or description_cut:
        metadata["truncated"] = True
    submission = Submission(
        title=title,
        description=description,
        source=SOURCE,
        external_id=str(issue["id"]),
        reporter=_person(fields.get("reporter")) or _person(body.get("user")),
        metadata=metadata,
        tenant=tenant or str(project.get("key") or "default"),
    )
    return SourceEvent("create" if event == "jira:issue_created" else "update", submission)


# --------------------------------------------------------------------------- write-back


def issue_key(ticket: Ticket) -> str:
    jira = ticket.metadata.get("jira") or {}
    return str(jira.get("key") or ticket.external_id)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _adf(text: str) -> dict[str, Any]:
    paragraphs = [p for p in text.split("\n") if p.strip()]
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
    }


def plan(ticket: Ticket, current: Mapping[str, Any], rules: WritebackRules) -> Plan:
    """The calls that put the labels in force on the issue, leaving alone what a human set.

    Labels and components are only added (and this engine's own earlier ones removed);
    the priority is set only while the issue has none, or still has the one this engine set.
    """
    labels = ticket.labels
    assert labels is not None
    key = issue_key(ticket)
    written = dict(ticket.writeback.written) if ticket.writeback else {}
    present_labels = set(current.get("labels") or [])
    present_components = set(current.get("components") or [])
    confidence = confidence_of(ticket)
    update: dict[str, list[dict[str, Any]]] = {}
    fields: dict[str, Any] = {}
    now_written: dict[str, str] = {}
    skipped: list[str] = []

    def relabel(new: str | None) -> None:
        ops = []
        old = written.get("label")
        if old and old != new and old in present_labels:
            ops.append({"remove": old})
        if new and new not in present_labels:
            ops.append({"add": new})
        if ops:
            update["labels"] = ops
        if new:
            now_written["label"] = new

    if confidence >= rules.min_confidence:
        if "labels" in rules.jira_fields:
            relabel(f"{rules.label_prefix}{_slug(labels.category)}")
        if "components" in rules.jira_fields:
            component = labels.assignment_group
            ops = []
            old = written.get("component")
            if old and old != component and old in present_components:
                ops.append({"remove": {"name": old}})
            if component not in present_components:
                ops.append({"add": {"name": component}})
            if ops:
                update["components"] = ops
            now_written["component"] = component
        if "priority" in rules.jira_fields:
            target = rules.priority_map.get(labels.priority, labels.priority)
            present = current.get("priority")
            if present in (None, "", written.get("priority")):
                if present != target:
                    fields["priority"] = {"name": target}
                now_written["priority"] = target
            else:
                skipped.append(f"priority: {present!r} was set in Jira by someone else, left alone")
        comment = f"Triage: {summary_line(ticket)}"
    else:
        relabel(f"{rules.label_prefix}needs-review")
        rationale = ticket.classification.rationale if ticket.classification else ""
        comment = (
            f"Triage needs review: best guess {labels.category} at {confidence:.0%} confidence, below the "
            f"{rules.min_confidence:.0%} needed to label the issue. {rationale}"
        ).strip()
    calls: list[Call] = []
    if update or fields:
        body: dict[str, Any] = {}
        if update:
            body["update"] = update
        if fields:
            body["fields"] = fields
        calls.append(Call("PUT", f"/rest/api/3/issue/{key}", {}, body))
    calls.append(Call("POST", f"/rest/api/3/issue/{key}/comment", {}, {"body": _adf(comment)}))
    return Plan(tuple(calls), now_written, tuple(skipped))


def read_fields(issue: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``plan`` needs, from ``GET /rest/api/3/issue/{key}?fields=labels,components,priority``."""
    fields = issue.get("fields") or {}
    return {
        "labels": list(fields.get("labels") or []),
        "components": [c for c in (_name(c) for c in _list(fields.get("components"))) if c],
        "priority": _name(fields.get("priority")),
    }
