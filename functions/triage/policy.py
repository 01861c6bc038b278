"""When the memory may answer a ticket, and which past tickets the classifier is shown.

Pure functions over neighbours already fetched from the memory. This module must
never call the memory, the model or the clock: the worker, the tests and the
offline evaluation (``triage evaluate`` / ``calibrate``) all run the very same decision.

The decision trusts evidence, not one number. A fixed similarity threshold
answers wrong tickets from memory (under all-MiniLM-L6-v2 "I cannot log in to
the VPN" and "I cannot log in to Salesforce" sit at cosine 0.62, closer than
many true paraphrases), so the memory answers only on one of two rules:

* **near-duplicate**: a neighbour at or above ``near_duplicate_similarity`` (a lower
  bar, ``human_near_duplicate_similarity``, for one a human verified), and no other
  near-duplicate disagrees (human-verified ones outvote the others);
* **neighbourhood vote**: among the ``agreement_neighbours`` nearest, those at least
  ``agreement_similarity`` close vote, each with weight similarity ** ``similarity_exponent``
  (times ``human_weight`` for a human's label); there must be at least
  ``agreement_min_voters`` of them and the winning category needs ``agreement_share``
  of the weight.

An entry a human corrected is relabelled in place in the memory, so it never
serves its old label again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence

from .domain import Labels, LabelSource, Neighbour, vote_weight

# Neighbours fetched per ticket (MEMORY_NEIGHBOURS): the vote reads the nearest
# ``agreement_neighbours`` of them, the local classifier and the few-shot selection all.
MEMORY_NEIGHBOURS = 20


@dataclasses.dataclass(frozen=True)
class MemoryPolicy:
    # Defaults chosen with ``triage calibrate``-style replays of both shared ticket sets
    # (stream in numpy seed-0 order, every earlier ticket in memory under its true label);
    # the README gives the figures. Every value is a MEMORY_* setting.
    near_duplicate_similarity: float = 0.97
    human_near_duplicate_similarity: float = 0.90
    agreement_neighbours: int = 10
    agreement_similarity: float = 0.45
    agreement_min_voters: int = 6
    agreement_share: float = 0.85
    similarity_exponent: float = 4.0
    human_weight: float = 2.0

    def __post_init__(self) -> None:
        for name in ("near_duplicate_similarity", "human_near_duplicate_similarity", "agreement_similarity"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a cosine similarity in [-1, 1], got {value}")
        if not 1 <= self.agreement_min_voters <= self.agreement_neighbours:
            raise ValueError("agreement_min_voters must be between 1 and agreement_neighbours")
        if not 0.5 < self.agreement_share <= 1.0:
            raise ValueError("agreement_share must be in (0.5, 1]")
        if self.similarity_exponent <= 0:
            raise ValueError("similarity_exponent must be positive")
        if self.human_weight < 1.0:
            raise ValueError("human_weight must be at least 1")


@dataclasses.dataclass(frozen=True)
class MemoryDecision:
    hit: bool
    reason: str
    labels: Labels | None = None
    matched: Neighbour | None = None
    confidence: float = 0.0


def _near_duplicate_bar(neighbour: Neighbour, policy: MemoryPolicy) -> float:
    if neighbour.label_source is LabelSource.HUMAN:
        return policy.human_near_duplicate_similarity
    return policy.near_duplicate_similarity


def decide(neighbours: Sequence[Neighbour], policy: MemoryPolicy) -> MemoryDecision:
    """Answer from memory only on strong evidence; ``neighbours`` in any order."""
    ranked = sorted(neighbours, key=lambda n: n.similarity, reverse=True)
    if not ranked:
        return MemoryDecision(hit=False, reason="the memory holds nothing for this tenant yet")

    near = [n for n in ranked if n.similarity >= _near_duplicate_bar(n, policy)]
    if near:
        humans = [n for n in near if n.label_source is LabelSource.HUMAN]
        voters = humans or near
        if len({n.labels.category for n in voters}) == 1:
            matched = voters[0]
            return MemoryDecision(
                hit=True,
                reason=(
                    f"near-duplicate of ticket {matched.ticket_id} "
                    f"(similarity {matched.similarity:.3f}, labels by {matched.label_source.value})"
                ),
                labels=matched.labels,
                matched=matched,
                confidence=round(matched.similarity, 4),
            )

    closest = f"no near-duplicate (best {ranked[0].similarity:.3f})"
    voters = [n for n in ranked[: policy.agreement_neighbours] if n.similarity >= policy.agreement_similarity]
    if len(voters) < policy.agreement_min_voters:
        return MemoryDecision(
            hit=False,
            reason=(
                f"{closest} and {len(voters)} neighbours at >= {policy.agreement_similarity:.2f}, "
                f"fewer than the {policy.agreement_min_voters} a vote needs"
            ),
        )
    votes: dict[str, float] = defaultdict(float)
    for neighbour in voters:
        votes[neighbour.labels.category] += vote_weight(
            neighbour, exponent=policy.similarity_exponent, human_weight=policy.human_weight
        )
    total = sum(votes.values())
    category, weight = max(votes.items(), key=lambda item: item[1])
    share = weight / total if total > 0 else 0.0
    if share < policy.agreement_share:
        split = ", ".join(f"{name} {value / total:.0%}" for name, value in sorted(votes.items(), key=lambda i: -i[1]))
        return MemoryDecision(hit=False, reason=f"{closest} and the {len(voters)} close neighbours disagree ({split})")
    agreeing = [n for n in voters if n.labels.category == category]
    # Within the winning category, a human's labels outrank the model's, then closeness decides.
    matched = max(agreeing, key=lambda n: (n.label_source is LabelSource.HUMAN, n.similarity))
    mean_similarity = sum(n.similarity for n in agreeing) / len(agreeing)
    return MemoryDecision(
        hit=True,
        reason=(
            f"{len(agreeing)} of {len(voters)} close neighbours agree on {category} "
            f"({share:.0%} of the weighted vote, similarity {voters[-1].similarity:.3f} to {voters[0].similarity:.3f})"
        ),
        labels=matched.labels,
        matched=matched,
        confidence=round(mean_similarity * share, 4),
    )


_WHITESPACE = re.compile(r"\s+")


def _normalised(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip().lower()


def select_examples(
    neighbours: Sequence[Neighbour],
    *,
    max_examples: int,
    max_chars: int,
) -> list[Neighbour]:
    """The past tickets to show the classifier: humans' first, then the closest; no
    repeats, and no more text than ``max_chars`` in all."""
    ordered = sorted(
        neighbours,
        key=lambda n: (n.label_source is not LabelSource.HUMAN, -n.similarity),
    )
    chosen: list[Neighbour] = []
    seen: set[str] = set()
    budget = max_chars
    for neighbour in ordered:
        if len(chosen) >= max_examples:
            break
        key = _normalised(neighbour.text)
        if not key or key in seen or len(neighbour.text) > budget:
            continue
        seen.add(key)
        budget -= len(neighbour.text)
        chosen.append(neighbour)
    return chosen


def sampled_for_audit(ticket_id: str, rate: float) -> bool:
    """Whether a memory answer is also sent to the classifier of record (MEMORY_AUDIT_RATE):
    the same choice for the same ticket on every delivery, ``rate`` of tickets over many."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"audit\0{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < rate
