"""The API's request and response bodies, as pydantic models.

The same models validate requests, shape responses and generate the OpenAPI
document, so what ``/openapi.json`` promises is what the API does. This module
must never reach the service: it only describes JSON.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

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
    created_at: datetime
    updated_at: datetime


class ClassifyAccepted(BaseModel):
    ticket_id: str
    status: StatusName
    status_url: str
    duplicate: bool = Field(description="True when an earlier request already created this ticket.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_failed`.")
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
