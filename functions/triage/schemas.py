"""The API's request and response bodies, as pydantic models.

The same models validate requests, shape responses and generate the OpenAPI
document, so what ``/openapi.json`` promises is what the API does. This module
must never reach the service: it only describes JSON.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TITLE_MAX_CHARS = 300
DESCRIPTION_MAX_CHARS = 32_000
METADATA_MAX_BYTES = 8 * 1024
SHORT_TEXT_MAX_CHARS = 256
COMMENT_MAX_CHARS = 4_000
IDEMPOTENCY_KEY_MAX_CHARS = 255

StatusName = Literal["Pending", "Classified_By_AI", "Classified_By_Cache", "Corrected_By_Human", "Failed"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ClassifyRequest(_Request):
    """A ticket to classify."""

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS, description="Short summary of the problem.")
    description: str = Field("", max_length=DESCRIPTION_MAX_CHARS, description="Full text of the ticket.")
    source: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The system the ticket comes from, e.g. `servicenow` or `jira`.",
    )
    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=SHORT_TEXT_MAX_CHARS,
        description="The ticket's id in its source; the same (source, external_id) is the same ticket.",
    )
    reporter: str | None = Field(None, max_length=SHORT_TEXT_MAX_CHARS)
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Free-form JSON object kept with the ticket (at most {METADATA_MAX_BYTES} bytes).",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
            raise ValueError(f"metadata must be at most {METADATA_MAX_BYTES} bytes of JSON")
        return value


class FeedbackRequest(_Request):
    """A human's correction. Omitted priority keeps the current one; omitted assignment
    group keeps the current one if the category is unchanged, else takes the category's
    default group."""

    category: str = Field(min_length=1, max_length=SHORT_TEXT_MAX_CHARS)
    priority: str | None = Field(None, min_length=1, max_length=SHORT_TEXT_MAX_CHARS)
    assignment_group: str | None = Field(None, min_length=1, max_length=SHORT_TEXT_MAX_CHARS)
    reviewer: str | None = Field(None, max_length=SHORT_TEXT_MAX_CHARS)
    comment: str | None = Field(None, max_length=COMMENT_MAX_CHARS)


class LabelsView(BaseModel):
    category: str
    priority: str
    assignment_group: str


class ClassificationView(BaseModel):
    category: str
    priority: str
    assignment_group: str
    confidence: float
    rationale: str
    path: Literal["memory", "classifier"] = Field(description="`memory`: answered from a similar past ticket.")
    classifier: str | None = Field(None, description="The model that answered on the classifier path.")
    matched_ticket_id: str | None = Field(None, description="On the memory path, the ticket whose labels were used.")
    similarity: float | None = Field(None, description="Cosine similarity of the closest ticket in memory.")
    example_ticket_ids: list[str] = Field(default_factory=list, description="Past tickets shown to the classifier.")
    input_tokens: int | None = None
    output_tokens: int | None = None
    classified_at: datetime | None = None


class CorrectionView(BaseModel):
    category: str
    priority: str
    assignment_group: str
    previous: LabelsView | None
    reviewer: str | None
    comment: str | None
    corrected_at: datetime


class WritebackCall(BaseModel):
    method: str
    url: str
    body: dict[str, Any]
    status_code: int | None = Field(description="None: not sent (a dry run).")


class WritebackView(BaseModel):
    status: Literal["pending", "running", "done", "dry_run", "failed"]
    requested_at: datetime
    finished_at: datetime | None = None
    attempts: int
    calls: list[WritebackCall] = Field(description="What was sent to the source, or would have been in a dry run.")
    written: dict[str, str] = Field(description="Values this engine set in the source.")
    skipped: list[str] = Field(description="Fields left alone because someone else set them, and why.")
    last_error: str | None = None


class TicketView(BaseModel):
    ticket_id: str
    status: StatusName
    tenant: str
    title: str
    description: str
    source: str | None
    external_id: str | None
    reporter: str | None
    metadata: dict[str, Any]
    labels: LabelsView | None = Field(
        description="The labels in force: the latest correction, else the classification."
    )
    classification: ClassificationView | None
    corrections: list[CorrectionView]
    attempts: int = Field(description="Processing attempts so far.")
    last_error: str | None
    revision: int = Field(0, description="How many times the source changed the text and the ticket was re-triaged.")
    writeback: WritebackView | None = Field(None, description="Writing the labels back to Jira or ServiceNow.")
    created_at: datetime
    updated_at: datetime


class ClassifyAccepted(BaseModel):
    ticket_id: str
    status: StatusName
    status_url: str
    duplicate: bool = Field(description="True when an earlier request already created this ticket.")


class _Open(BaseModel):
    """Webhook bodies are the sources' own: unknown fields are allowed and ignored."""

    model_config = ConfigDict(extra="allow")


class JiraIssueFields(_Open):
    summary: str | None = None
    description: str | dict[str, Any] | None = Field(
        None, description="A plain string (REST v2 webhooks) or an Atlassian Document Format object (v3)."
    )
    priority: dict[str, Any] | None = None
    labels: list[str] | None = None
    components: list[dict[str, Any]] | None = None
    project: dict[str, Any] | None = Field(None, description="Its `key` is the tenant unless JIRA_TENANT is set.")
    reporter: dict[str, Any] | None = None


class JiraIssue(_Open):
    id: str
    key: str | None = None
    fields: JiraIssueFields


class JiraWebhook(_Open):
    """A Jira Cloud or Data Center webhook body (`jira:issue_created`, `jira:issue_updated`)."""

    webhookEvent: str
    issue: JiraIssue | None = None
    changelog: dict[str, Any] | None = Field(
        None, description="On `jira:issue_updated`, only a change of summary or description re-triages."
    )


ServiceNowValue = str | dict[str, Any] | None


class ServiceNowIncident(_Open):
    """The incident JSON a Business Rule sends; values may be strings or `{value, display_value}`."""

    sys_id: str
    short_description: ServiceNowValue = None
    description: ServiceNowValue = None
    number: ServiceNowValue = None
    category: ServiceNowValue = None
    priority: ServiceNowValue = None
    impact: ServiceNowValue = None
    urgency: ServiceNowValue = None
    assignment_group: ServiceNowValue = None
    caller_id: ServiceNowValue = None
    state: ServiceNowValue = None
    opened_at: ServiceNowValue = None


class WebhookResult(BaseModel):
    action: Literal["created", "duplicate", "retriaged", "unchanged", "ignored"]
    ticket_id: str | None = None
    status: StatusName | None = None
    status_url: str | None = None
    duplicate: bool | None = None
    reason: str | None = None


class ReconcileRequest(_Request):
    """Restart stopped work (Cloud Scheduler calls this every few minutes). Omitted values take
    RECONCILE_AFTER_SECONDS and RECONCILE_LIMIT."""

    older_than_seconds: float | None = Field(None, gt=0, le=30 * 24 * 3600)
    limit: int | None = Field(None, ge=1, le=5000)


class ReconcileResult(BaseModel):
    republished: int
    failed: int
    writebacks: int
    remembered: int
    ticket_ids: dict[str, list[str]]


class ReplayRequest(_Request):
    """Replay the given Failed tickets, or (``all``) the oldest ``limit`` of them."""

    ticket_ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] | None = Field(None, max_length=1000)
    all: bool = False
    limit: int = Field(100, ge=1, le=1000)


class ReplayResult(BaseModel):
    replayed: list[str]


class FailedTicket(BaseModel):
    ticket_id: str
    source: str | None
    external_id: str | None
    attempts: int
    last_error: str | None
    updated_at: datetime


class FailedList(BaseModel):
    tickets: list[FailedTicket]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_failed`.")
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class TicketList(BaseModel):
    tickets: list[TicketView]


class StatsBucket(BaseModel):
    start: str
    memory: int = Field(description="Tickets created in this bucket and answered from memory")
    llm: int = Field(description="Tickets created in this bucket and answered by the classifier")


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    tickets: int = Field(description="Classified tickets the percentiles are taken over (the newest, at most 1,000)")


class Stats(BaseModel):
    window_seconds: int
    since: str
    counts: dict[str, int] = Field(description="Tickets created in the window, by current status")
    total: int
    memory_hit_ratio: float | None = Field(description="Answered from memory / answered by memory or classifier")
    llm_calls: int
    llm_calls_avoided: int
    tokens_per_llm_call: float
    tokens_per_llm_call_measured: bool = Field(description="False: LLM_TOKENS_PER_CALL, no call recorded tokens yet")
    estimated_savings: float = Field(description="llm_calls_avoided x tokens per call / 1000 x LLM_PRICE_PER_1K_TOKENS")
    time_to_classification_ms: Percentiles
    series: list[StatsBucket]
