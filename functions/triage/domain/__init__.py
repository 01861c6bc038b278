"""The engine's vocabulary: tickets and their transitions, the taxonomy, memory entries,
write-back state and the work messages. Frozen values and pure functions only: nothing
here does I/O or imports Google, Chroma or torch.

The names most code needs are importable from ``triage.domain`` directly; each lives in
one module of this package.
"""

from .memory import LabelSource, MemoryEntry, Neighbour, follows_correction, vote_weight
from .messages import MessageKind, WorkMessage
from .taxonomy import LABEL_NAMES, AssignmentGroup, Category, Labels, Priority, Taxonomy
from .ticket import (
    DESCRIPTION_MAX_CHARS,
    FINAL_STATUSES,
    LOCAL_CLASSIFIER,
    REVIEWED,
    TITLE_MAX_CHARS,
    AnswerPath,
    Audit,
    Classification,
    Correction,
    Status,
    Submission,
    Ticket,
    Unchanged,
    model_text,
    new_ticket,
    ticket_id_for,
)
from .writeback import Call, Plan, Writeback, WritebackRules, WritebackStatus

__all__ = [
    "DESCRIPTION_MAX_CHARS",
    "FINAL_STATUSES",
    "LABEL_NAMES",
    "LOCAL_CLASSIFIER",
    "REVIEWED",
    "TITLE_MAX_CHARS",
    "AnswerPath",
    "AssignmentGroup",
    "Audit",
    "Call",
    "Category",
    "Classification",
    "Correction",
    "LabelSource",
    "Labels",
    "MemoryEntry",
    "MessageKind",
    "Neighbour",
    "Plan",
    "Priority",
    "Status",
    "Submission",
    "Taxonomy",
    "Ticket",
    "Unchanged",
    "WorkMessage",
    "Writeback",
    "WritebackRules",
    "WritebackStatus",
    "follows_correction",
    "model_text",
    "new_ticket",
    "ticket_id_for",
    "vote_weight",
]
