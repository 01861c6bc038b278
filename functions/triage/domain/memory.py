"""What the semantic memory holds: one entry per ticket, its labels and who gave them.

Frozen values and the two rules every memory (Chroma, the tests' in-memory one) and
every reader of neighbours (the decision policy, the local classifier) share: how
much a neighbour's label weighs, and which entries follow a human's correction.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from .taxonomy import Labels


class LabelSource(enum.StrEnum):
    """Who put a label on a memory entry; a human outranks everyone."""

    HUMAN = "human"
    MODEL = "model"
    MEMORY = "memory"
    IMPORTED = "imported"


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """A memory entry found near a ticket."""

    ticket_id: str
    similarity: float
    labels: Labels
    label_source: LabelSource
    text: str = ""
    source_ticket_id: str | None = None


@dataclasses.dataclass(frozen=True)
class MemoryEntry:
    ticket_id: str
    tenant: str
    embedding: Sequence[float]
    text: str
    labels: Labels
    label_source: LabelSource
    # On a memory answer: the entry whose labels it copied. It follows that entry's corrections.
    source_ticket_id: str | None = None


def vote_weight(neighbour: Neighbour, *, exponent: float, human_weight: float) -> float:
    """A neighbour's say in a vote: similarity ** exponent, times ``human_weight`` for a human's label."""
    boost = human_weight if neighbour.label_source is LabelSource.HUMAN else 1.0
    return max(neighbour.similarity, 0.0) ** exponent * boost


def follows_correction(label_source: LabelSource) -> bool:
    """Whether an entry answered from a corrected one takes the correction's labels too.

    It inherited the old labels, so it follows them, unless a human verified it on its own.
    A follower's labels are then ``LabelSource.MEMORY``'s.
    """
    return label_source is not LabelSource.HUMAN
