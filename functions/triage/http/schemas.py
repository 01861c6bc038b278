"""The API's request and response bodies, as pydantic models.

The same models validate requests, shape responses and generate the OpenAPI
document, so what ``/openapi.json`` promises is what the API does. This module
must never reach the service: it only describes JSON.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..domain import DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS, Status
from ..service import EventOutcome
from .json_types import JsonBool, json_float, json_int

METADATA_MAX_BYTES = 8 * 1024
SHORT_TEXT_MAX_CHARS = 256
COMMENT_MAX_CHARS = 4_000
IDEMPOTENCY_KEY_MAX_CHARS = 255
# Text that must say something: at least one character that is not white space. (JSON Schema
# patterns are unanchored, as pydantic's are: this one searches.)
SOMETHING = r"\S"
TICKET_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TicketId = Annotated[str, Field(pattern=TICKET_ID_PATTERN)]


class _Request(BaseModel):
    """A body of ours: unknown fields are refused. Strings are taken as sent (the use case
    trims them), so every length in the schema is the length the server checks. Numbers and
    booleans are ``json_int``, ``json_float`` and ``JsonBool``: taken as JSON Schema types them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassifyRequest(_Request):
    """A ticket to classify."""

    title: str = Field(
        min_length=1, max_length=TITLE_MAX_CHARS, pattern=SOMETHING, description="Short summary of the problem."
    )
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
        pattern=SOMETHING,
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


class ConfirmRequest(_Request):
    """A reviewer's word that the labels in force are right: the ticket becomes Verified_By_Human
    (a corrected ticket stays Corrected_By_Human). The body may be empty."""

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
    confidence: float = Field(
        description="The engine's own confidence in these labels (never a model's self-report): on the memory "
        "path the decision's probability, on the classifier path the local classifier's agreement."
    )
    rationale: str
    path: Literal["memory", "classifier"] = Field(description="`memory`: answered from a similar past ticket.")
    classifier: str | None = Field(None, description="The model that answered on the classifier path.")
    matched_ticket_id: str | None = Field(None, description="On the memory path, the ticket whose labels were used.")
    similarity: float | None = Field(None, description="Cosine similarity of the closest ticket in memory.")
    example_ticket_ids: list[str] = Field(default_factory=list, description="Past tickets shown to the classifier.")
    input_tokens: int | None = None
    output_tokens: int | None = Field(None, description="Thinking tokens included: they are billed as output.")
    classified_at: datetime | None = None
    needs_review: bool = Field(False, description="Answered in a degraded mode (the fallback classifier): check it.")
    degraded: list[str] = Field(default_factory=list, description="What did not work, and what was done instead.")
    remembered: bool = Field(True, description="False: the memory was down; the reconciler puts the ticket in it.")
    probabilities: dict[str, float] = Field(
        default_factory=dict,
        description="A calibrated memory answer: per label, the probability that it is what the classifier of "
        "record would give (each cleared its value's bar).",
    )


class CorrectionView(BaseModel):
    category: str
    priority: str
    assignment_group: str
    previous: LabelsView | None
    reviewer: str | None
    comment: str | None
    corrected_at: datetime
    confirmed: bool = Field(False, description="A confirmation: the reviewer said the labels were right.")


class AuditView(BaseModel):
    category: str
    priority: str
    assignment_group: str
    classifier: str = Field(description="The classifier of record that was asked.")
    agreed: dict[str, bool] = Field(description="Per label: did it give the memory's value?")
    audited_at: datetime


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
    status: Status
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
    audit: AuditView | None = Field(
        None, description="A memory answer the classifier of record also answered, in the background."
    )
    created_at: datetime
    updated_at: datetime


class ClassifyAccepted(BaseModel):
    ticket_id: str
    status: Status
    status_url: str
    duplicate: bool = Field(description="True when an earlier request already created this ticket.")


class WebhookResult(BaseModel):
    action: EventOutcome
    ticket_id: str | None = None
    status: Status | None = None
    status_url: str | None = None
    duplicate: bool | None = None
    reason: str | None = None


class ReconcileRequest(_Request):
    """Restart stopped work (Cloud Scheduler calls this every few minutes). Omitted values take
    RECONCILE_AFTER_SECONDS and RECONCILE_LIMIT."""

    older_than_seconds: json_float(gt=0, le=30 * 24 * 3600) | None = None
    limit: json_int(ge=1, le=5000) | None = None


class ReconcileResult(BaseModel):
    republished: int
    failed: int
    writebacks: int
    remembered: int
    ticket_ids: dict[str, list[str]]


class ReplayRequest(_Request):
    """Replay the given Failed tickets, or (``all: true``) the oldest ``limit`` of them."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["ticket_ids"], "properties": {"ticket_ids": {"type": "array"}}},
                {"required": ["all"], "properties": {"all": {"const": True}}},
            ]
        },
    )

    ticket_ids: list[TicketId] | None = Field(None, min_length=1, max_length=1000)
    all: JsonBool = False
    limit: json_int(ge=1, le=1000) = 100

    @model_validator(mode="after")
    def _says_which(self) -> ReplayRequest:
        if not self.all and self.ticket_ids is None:
            raise ValueError("give ticket_ids, or all: true")
        return self


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
    llm: int = Field(description="Tickets created in this bucket and answered by an LLM (Gemini)")
    local_classifier: int = Field(description="Tickets created in this bucket and answered by the local classifier")


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    tickets: int = Field(description="Classified tickets the percentiles are taken over (the newest, at most 1,000)")


class TenantMemory(BaseModel):
    recorded: int = Field(description="Entries on record in Firestore")
    indexed: int = Field(description="Entries in the tenant's Chroma collection")
    index_missing: bool = Field(description="Recorded but not indexed: no answers from memory until `triage rebuild`")


class MemoryHealth(BaseModel):
    tenants: dict[str, TenantMemory]
    index_missing: list[str] = Field(description="Tenants whose index is missing")
    unavailable: str | None = Field(description="Why the memory could not be read, if it could not")


class AnsweredBy(BaseModel):
    memory: int = Field(description="Answered from memory: no classifier call")
    llm: int = Field(description="Answered by an LLM (Gemini): one billed call each")
    local_classifier: int = Field(description="Answered by the embedded local classifier: no LLM call")


class FittedRecord(BaseModel):
    answered: int = Field(description="Earlier tickets at or above the bar when it was fitted")
    correct: int


class PrecisionRow(BaseModel):
    value: str
    target: float
    threshold: float | None = Field(description="The bar the decision's probability must clear; None: never answered")
    threshold_source: str | None = Field(description="`own` record, `pooled` bar with its own evidence, or `none`")
    tightened_at: str | None = Field(description="When the live check last raised the bar by itself")
    fitted: FittedRecord | None
    measured: int = Field(description="Memory answers with a measured outcome (audits, confirmations, corrections)")
    correct: int
    precision: float | None
    lower95: float | None = Field(description="95% Wilson lower bound of the measured precision")
    tickets: int = Field(description="Recent tickets (the newest 1,000 of the window) classified with this value")
    answered_share: float | None = Field(description="Of those, the share the memory answered")
    status: Literal["ok", "below_target", "no_bar", "unmeasured"]


class Precision(BaseModel):
    tenant: str
    calibrated: bool = Field(description="False: `triage calibrate` never ran; the fixed policy decides")
    target: float = Field(description="MEMORY_TARGET_PRECISION, or the target the calibration was fitted to")
    fitted_at: str | None = None
    labels: dict[str, list[PrecisionRow]] = Field(description="Per label (category, priority, assignment_group)")
    unavailable: str | None = None


class Stats(BaseModel):
    window_seconds: int
    since: str
    counts: dict[str, int] = Field(description="Tickets created in the window, by current status")
    total: int
    answered_by: AnsweredBy
    memory_hit_ratio: float | None = Field(description="Answered from memory / answered by anything")
    llm_calls: int = Field(description="Tickets answered by an LLM (the local classifier is not one)")
    llm_calls_avoided: int = Field(description="Tickets answered from memory")
    tokens_per_llm_call: float
    tokens_per_llm_call_measured: bool = Field(description="False: LLM_TOKENS_PER_CALL, no call recorded tokens yet")
    estimated_savings: float = Field(description="llm_calls_avoided x tokens per call / 1000 x LLM_PRICE_PER_1K_TOKENS")
    time_to_classification_ms: Percentiles
    series: list[StatsBucket]
    memory: MemoryHealth | None = None
    precision: Precision | None = Field(None, description="The tenant's live precision of memory answers")


# --------------------------------------------------------------------------- query strings


class _Query(BaseModel):
    """A query string: parameters this route does not use are ignored (a proxy's cache buster)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class TicketsQuery(_Query):
    status: Status | None = None
    review: Literal["true", "false"] = Field("false", description="`true`: only tickets a human should look at")
    limit: int = Field(50, ge=1, le=500)


class StatsQuery(_Query):
    hours: int = Field(24, ge=1, le=24 * 90, description="The window, ending now")
    buckets: int = Field(12, ge=1, le=48, description="Time slices of the window in `series`")
    tenant: str | None = Field(
        None, min_length=1, max_length=200, description="Whose precision table: default DEFAULT_TENANT"
    )


class FailedQuery(_Query):
    limit: int = Field(50, ge=1, le=1000)
