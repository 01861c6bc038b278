"""What writing labels back to a source consists of: calls planned from a ticket and the
source's current values. Pure values; the per-source planners live in
``triage.integrations`` and the HTTP clients in ``triage.adapters``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .domain import Status, Ticket


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: Mapping[str, str]
    body: Mapping[str, Any] | None

    def record(self, base_url: str, status_code: int | None) -> dict[str, Any]:
        """How the ticket remembers the call (``status_code`` None: not sent, a dry run)."""
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        url = f"{base_url.rstrip('/')}{self.path}" + (f"?{query}" if query else "")
        return {"method": self.method, "url": url, "body": dict(self.body or {}), "status_code": status_code}


@dataclasses.dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...]
    written: Mapping[str, str]  # field -> value this engine sets
    skipped: tuple[str, ...]  # fields left alone, and why


@dataclasses.dataclass(frozen=True)
class WritebackRules:
    min_confidence: float = 0.7
    jira_fields: frozenset[str] = frozenset({"labels"})
    label_prefix: str = "triage-"
    priority_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    category_map: Mapping[str, str] = dataclasses.field(default_factory=dict)


def confidence_of(ticket: Ticket) -> float:
    """A human's correction is certain; otherwise the classification's own confidence."""
    if ticket.status is Status.CORRECTED_BY_HUMAN:
        return 1.0
    return ticket.classification.confidence if ticket.classification else 0.0


def summary_line(ticket: Ticket) -> str:
    labels = ticket.labels
    assert labels is not None
    if ticket.status is Status.CORRECTED_BY_HUMAN:
        how = "set by a reviewer"
        rationale = ticket.corrections[-1].comment or ""
    else:
        how = f"confidence {confidence_of(ticket):.0%}"
        if ticket.classification and ticket.classification.path.value == "memory":
            how += f", answered from similar ticket {ticket.classification.matched_ticket_id}"
        rationale = ticket.classification.rationale if ticket.classification else ""
    text = f"category {labels.category} ({how}); priority {labels.priority}; group {labels.assignment_group}."
    return f"{text} {rationale}".strip()
