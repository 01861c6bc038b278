"""Jira Cloud and Data Center webhooks in, and the Jira REST calls that write labels back.

Webhook bodies use the REST v2 shapes (the description is a plain string); a body
built from v3 carries Atlassian Document Format instead, read here as plain text.
Jira admin webhooks created with a secret sign the raw body (``X-Hub-Signature:
sha256=<hex>``); ``X-Atlassian-Webhook-Identifier`` stays the same across retries of
one delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..domain import DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS, Call, Plan, Submission, Ticket, WritebackRules
from ..domain.writeback import Draft, labels_now, review_note, summary_line
from ..errors import ValidationFailed
from . import EventAction, Source, SourceEvent, truncate, validated

SOURCE = "jira"
SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"
TRIAGED_EVENTS = ("jira:issue_created", "jira:issue_updated")
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


# --------------------------------------------------------------------------- the webhook body


class _Open(BaseModel):
    """Jira's own JSON: unknown fields are allowed and ignored; known ones must have their type."""

    model_config = ConfigDict(extra="allow")


class JiraIssueFields(_Open):
    summary: str | None = None
    description: str | dict[str, Any] | None = Field(
        None, description="A plain string (REST v2 webhooks) or an Atlassian Document Format object (v3)."
    )
    issuetype: dict[str, Any] | str | None = None
    status: dict[str, Any] | str | None = None
    priority: dict[str, Any] | str | None = None
    labels: list[Any] | None = None
    components: list[Any] | None = None
    project: dict[str, Any] | None = Field(None, description="Its `key` is the tenant unless JIRA_TENANT is set.")
    reporter: dict[str, Any] | None = None


class JiraIssue(_Open):
    id: str = Field(min_length=1, pattern=r"\S", description="One ticket per issue id.")
    key: str | None = None
    self: str | None = None
    fields: JiraIssueFields


class JiraChangelog(_Open):
    items: list[dict[str, Any]] = Field(default_factory=list)


class JiraWebhook(_Open):
    """A Jira Cloud or Data Center webhook body. Only `jira:issue_created` and `jira:issue_updated`
    are triaged, and they need an `issue` with a summary or a description; any other event is
    acknowledged (200) and ignored. Fields this engine does not read may hold anything."""

    webhookEvent: str = Field(description="e.g. `jira:issue_created`")
    issue: JiraIssue | None = None
    changelog: JiraChangelog | None = Field(
        None, description="On `jira:issue_updated`, only a change of summary or description re-triages."
    )
    user: dict[str, Any] | None = Field(None, description="Who caused the event: the reporter when the issue has none.")


def parse_webhook(body: Any, *, tenant: str | None) -> SourceEvent:
    """Understand a webhook body. ``tenant``: a fixed tenant, or None for the issue's project."""
    webhook: JiraWebhook = validated(JiraWebhook, body, "Jira webhook body")
    event = webhook.webhookEvent
    if event not in TRIAGED_EVENTS:
        return SourceEvent(EventAction.IGNORE, reason=f"event {event or '(none)'} is not triaged")
    issue = webhook.issue
    if issue is None:
        raise ValidationFailed("the webhook carries no issue with an id and fields")
    fields = issue.fields
    if event == "jira:issue_updated":
        items = webhook.changelog.items if webhook.changelog else []
        changed = {str(i.get("fieldId") or i.get("field") or "").lower() for i in items}
        if not changed & TEXT_FIELDS:
            return SourceEvent(EventAction.IGNORE, reason="neither summary nor description changed")

    title, title_cut = truncate(_text(fields.summary), TITLE_MAX_CHARS)
    description, description_cut = truncate(_text(fields.description), DESCRIPTION_MAX_CHARS)
    if not title:
        title, _ = truncate(description.split("\n", 1)[0], TITLE_MAX_CHARS)
    if not title:
        raise ValidationFailed("the issue has neither a summary nor a description")
    project = fields.project or {}
    metadata: dict[str, Any] = {
        "jira": {
            "key": issue.key or "",
            "project": project.get("key"),
            "issue_type": _name(fields.issuetype),
            "status": _name(fields.status),
            "priority": _name(fields.priority),
            "labels": [str(label) for label in fields.labels or []][:50],
            "components": [c for c in (_name(c) for c in fields.components or []) if c][:50],
            "self": issue.self,
            "event": event,
        }
    }
    if title_cut or description_cut:
        metadata["truncated"] = True
    submission = Submission(
        title=title,
        description=description,
        source=SOURCE,
        external_id=issue.id,
        reporter=_person(fields.reporter) or _person(webhook.user),
        metadata=metadata,
        tenant=tenant or str(project.get("key") or "default"),
    )
    return SourceEvent(EventAction.CREATE if event == "jira:issue_created" else EventAction.UPDATE, submission)


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


def _swap(field: str, new: str, present: set[str], draft: Draft, item: Any = lambda value: value) -> list[dict]:
    """Add ``new`` to a list field and take out the value this engine put there before (and only
    that one: the rest of the list is people's), as Jira's ``update`` operations."""
    operations = []
    old = draft.previously_written.get(field)
    if old and old != new and old in present:
        operations.append({"remove": item(old)})
    if new not in present:
        operations.append({"add": item(new)})
    draft.written[field] = new
    return operations


def plan(ticket: Ticket, current: Mapping[str, Any], rules: WritebackRules) -> Plan:
    """The calls that put the labels in force on the issue, leaving alone what a human set.

    Labels and components are only added (and this engine's own earlier ones removed);
    the priority is set only while the issue has none, or still has the one this engine set.
    """
    labels = ticket.labels
    assert labels is not None
    key = issue_key(ticket)
    draft = Draft.for_ticket(ticket, WRITEBACK.title)
    present_labels = set(current.get("labels") or [])
    update: dict[str, list[dict[str, Any]]] = {}
    fields: dict[str, Any] = {}
    if labels_now(ticket, rules):
        if "labels" in rules.jira_fields:
            update["labels"] = _swap("label", f"{rules.label_prefix}{_slug(labels.category)}", present_labels, draft)
        if "components" in rules.jira_fields:
            present_components = set(current.get("components") or [])
            component = labels.assignment_group
            update["components"] = _swap(
                "component", component, present_components, draft, item=lambda name: {"name": name}
            )
        if "priority" in rules.jira_fields:
            target = rules.priority_map.get(labels.priority, labels.priority)
            if draft.own("priority", target, current.get("priority")):
                fields["priority"] = {"name": target}
        comment = f"Triage: {summary_line(ticket)}"
    else:
        update["labels"] = _swap("label", f"{rules.label_prefix}needs-review", present_labels, draft)
        comment = review_note(ticket, rules, to="label the issue")
    update = {name: operations for name, operations in update.items() if operations}
    calls: list[Call] = []
    if update or fields:
        body: dict[str, Any] = {}
        if update:
            body["update"] = update
        if fields:
            body["fields"] = fields
        calls.append(Call("PUT", f"/rest/api/3/issue/{key}", {}, body))
    calls.append(Call("POST", f"/rest/api/3/issue/{key}/comment", {}, {"body": _adf(comment)}))
    return draft.plan(calls)


def read_request(ticket: Ticket) -> tuple[str, dict[str, str]]:
    """The GET that reads what ``plan`` needs to know of the issue."""
    return f"/rest/api/3/issue/{issue_key(ticket)}", {"fields": "labels,components,priority"}


def read_fields(issue: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``plan`` needs, from ``read_request``'s answer."""
    fields = issue.get("fields") or {}
    components = fields.get("components")
    return {
        "labels": list(fields.get("labels") or []),
        "components": [c for c in (_name(c) for c in (components if isinstance(components, list) else [])) if c],
        "priority": _name(fields.get("priority")),
    }


WRITEBACK = Source(SOURCE, "Jira", read_request, read_fields, plan)
