"""The read side: what the API, the console and the command line show of the tickets.

Plain dicts of JSON types, built from the store's reads and aggregations; the HTTP layer
checks them against its response models. Nothing here changes a ticket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from .domain import AnswerPath, Status, Ticket
from .errors import NotFound
from .ports import Clock, ReadModel, Tickets, WorkQueries


def get_ticket(ticket_id: str, *, store: Tickets) -> Ticket:
    ticket = store.get(ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket with id {ticket_id!r}")
    return ticket


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    """A ticket as the API shows it: the labels in force on top, then how they were reached."""
    labels = ticket.labels
    classification = None
    if ticket.classification is not None:
        found = ticket.classification
        classification = {
            **found.labels.as_dict(),
            **{f.name: getattr(found, f.name) for f in dataclasses.fields(found) if f.name != "labels"},
        }
    corrections = [
        {
            **correction.labels.as_dict(),
            "previous": correction.previous.as_dict() if correction.previous else None,
            "reviewer": correction.reviewer,
            "comment": correction.comment,
            "corrected_at": correction.corrected_at,
        }
        for correction in ticket.corrections
    ]
    writeback = dataclasses.asdict(ticket.writeback) if ticket.writeback else None
    return {
        **{f.name: getattr(ticket, f.name) for f in dataclasses.fields(ticket)},
        "metadata": dict(ticket.metadata),
        "labels": labels.as_dict() if labels else None,
        "classification": classification,
        "corrections": corrections,
        "writeback": writeback,
    }


def needs_review(ticket: Ticket, below_confidence: float) -> bool:
    """A classified ticket a human should look at: flagged in a degraded mode, or unsure."""
    return (
        ticket.status in (Status.CLASSIFIED_BY_AI, Status.CLASSIFIED_BY_CACHE)
        and ticket.classification is not None
        and (ticket.classification.needs_review or ticket.classification.confidence < below_confidence)
    )


def list_tickets(
    status: Status | None,
    review: bool,
    limit: int,
    *,
    store: ReadModel,
    review_below_confidence: float,
) -> list[Ticket]:
    """Recent tickets, newest first; ``review`` keeps those a human should look at (among the
    newest 5 x ``limit``, at most 1,000)."""
    if review:
        candidates = store.recent(limit=min(limit * 5, 1000))
        return [t for t in candidates if needs_review(t, review_below_confidence)][:limit]
    return store.recent(status=status, limit=limit)


def failed_tickets(limit: int, *, store: WorkQueries) -> list[dict[str, Any]]:
    """Failed tickets with their last error, oldest first."""
    return [
        {
            "ticket_id": t.ticket_id,
            "source": t.source,
            "external_id": t.external_id,
            "attempts": t.attempts,
            "last_error": t.last_error,
            "updated_at": t.updated_at,
        }
        for t in store.find(status=Status.FAILED, limit=limit)
    ]


@dataclasses.dataclass(frozen=True)
class Pricing:
    """What an LLM call costs, for the savings estimate (LLM_PRICE_PER_1K_TOKENS, LLM_TOKENS_PER_CALL)."""

    price_per_1k_tokens: float = 0.0
    tokens_per_call: int = 1500  # until calls have recorded their tokens


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def stats(
    window: timedelta,
    buckets: int = 12,
    *,
    store: ReadModel,
    clock: Clock,
    pricing: Pricing = Pricing(),
) -> dict[str, Any]:
    """What the engine did over ``window``, from the store (authoritative across instances).

    Counts are aggregation queries per status, per answering path and per time bucket;
    times come from a projection of the newest classified tickets. ``counts`` is by current
    status (a corrected ticket is Corrected_By_Human); memory and LLM figures are by the
    path that answered, which a correction does not change.
    """
    now: datetime = clock()
    since = now - window
    counts = {status.value: store.count(status=status, since=since) for status in Status}
    step = window / buckets
    series = []
    for index in range(buckets):
        start = since + step * index
        # The last slice is open-ended, so the slices add up to the whole window.
        end = None if index == buckets - 1 else since + step * (index + 1)
        series.append(
            {
                "start": start.isoformat(),
                "memory": store.count(path=AnswerPath.MEMORY, since=start, until=end),
                "llm": store.count(path=AnswerPath.CLASSIFIER, since=start, until=end),
            }
        )
    from_memory, by_llm = sum(b["memory"] for b in series), sum(b["llm"] for b in series)
    answered = from_memory + by_llm
    calls, input_tokens, output_tokens = store.token_totals(since=since)
    measured = calls > 0 and input_tokens + output_tokens > 0
    per_call = (input_tokens + output_tokens) / calls if measured else pricing.tokens_per_call
    times = store.classification_times(since=since)
    return {
        "window_seconds": int(window.total_seconds()),
        "since": since.isoformat(),
        "counts": counts,
        "total": sum(counts.values()),
        "memory_hit_ratio": round(from_memory / answered, 4) if answered else None,
        "llm_calls": by_llm,
        "llm_calls_avoided": from_memory,
        "tokens_per_llm_call": round(per_call, 1),
        "tokens_per_llm_call_measured": measured,
        "estimated_savings": round(from_memory * per_call / 1000 * pricing.price_per_1k_tokens, 4),
        "time_to_classification_ms": {
            "p50": _percentile(times, 0.50),
            "p95": _percentile(times, 0.95),
            "tickets": len(times),
        },
        "series": series,
    }
