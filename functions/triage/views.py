"""The read side: what the API, the console and the command line show of the tickets.

Plain dicts of JSON types, built from the store's reads and aggregations; the HTTP layer
checks them against its response models. Nothing here changes a ticket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from .domain import LOCAL_CLASSIFIER, AnswerPath, Status, Ticket
from .errors import NotFound, TransientError
from .ports import Calibrations, Clock, Memory, ReadModel, Tickets, WorkQueries
from .precision import wilson_lower


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
            "confirmed": correction.confirmed,
        }
        for correction in ticket.corrections
    ]
    writeback = dataclasses.asdict(ticket.writeback) if ticket.writeback else None
    audit = None
    if ticket.audit is not None:
        audit = {
            **ticket.audit.labels.as_dict(),
            "classifier": ticket.audit.classifier,
            "agreed": dict(ticket.audit.agreed),
            "audited_at": ticket.audit.audited_at,
        }
    return {
        **{f.name: getattr(ticket, f.name) for f in dataclasses.fields(ticket)},
        "metadata": dict(ticket.metadata),
        "labels": labels.as_dict() if labels else None,
        "classification": classification,
        "corrections": corrections,
        "writeback": writeback,
        "audit": audit,
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


def memory_health(memory: Memory) -> dict[str, Any]:
    """Each tenant's memory: on record in Firestore, indexed in Chroma, and whether its index is
    missing (then nothing is answered from memory until `triage rebuild`)."""
    try:
        tenants = memory.health()
    except TransientError as error:
        return {"tenants": {}, "index_missing": [], "unavailable": str(error)}
    missing = sorted(t for t, figures in tenants.items() if figures["index_missing"])
    return {"tenants": tenants, "index_missing": missing, "unavailable": None}


def memory_precision(
    tenant: str, answers: Sequence[tuple[str, AnswerPath]], calibrations: Calibrations, default_target: float
) -> dict[str, Any]:
    """Per label and value, what the precision promise rests on: the target, the value's bar,
    the precision measured live on memory answers (audits, confirmations, corrections) with
    its 95% Wilson lower bound, and (for categories) the share of recent tickets the memory
    answered. ``status``: ``ok``, ``below_target`` (the bar has tightened or will), ``no_bar``
    (answers nothing from memory), ``unmeasured``."""
    try:
        calibration = calibrations.get(tenant)
        measured = calibrations.measured(tenant)
    except TransientError as error:
        unavailable = str(error)
        return {
            "tenant": tenant,
            "calibrated": False,
            "target": default_target,
            "labels": {},
            "unavailable": unavailable,
        }
    target = calibration.target if calibration else default_target
    per_category: dict[str, list[int]] = {}
    for category, path in answers:
        counts = per_category.setdefault(category, [0, 0])
        counts[0] += 1
        counts[1] += path is AnswerPath.MEMORY
    labels: dict[str, list[dict[str, Any]]] = {}
    names = {"category"} | set(measured) | set(calibration.labels if calibration else ())
    for label in sorted(names):
        fitted = calibration.labels.get(label) if calibration else None
        values = (set(measured.get(label, {})) | set(fitted.thresholds if fitted else ())) - {"*"}
        if label == "category":
            values |= set(per_category)
        rows = []
        for value in sorted(values):
            counts = measured.get(label, {}).get(value, {"answered": 0, "correct": 0})
            answered, correct = counts["answered"], counts["correct"]
            bar = fitted.thresholds.get(value, {}) if fitted else {}
            lower = round(wilson_lower(correct, answered), 4) if answered else None
            tickets, from_memory = per_category.get(value, [0, 0]) if label == "category" else (0, 0)
            if fitted is None or bar.get("threshold") is None:
                state = "no_bar"
            elif not answered:
                state = "unmeasured"
            else:
                state = "ok" if lower is not None and lower >= target else "below_target"
            rows.append(
                {
                    "value": value,
                    "target": target,
                    "threshold": bar.get("threshold"),
                    "threshold_source": bar.get("source"),
                    "tightened_at": bar.get("tightened_at"),
                    "fitted": {"answered": int(bar.get("answered") or 0), "correct": int(bar.get("correct") or 0)}
                    if fitted
                    else None,
                    "measured": answered,
                    "correct": correct,
                    "precision": round(correct / answered, 4) if answered else None,
                    "lower95": lower,
                    "tickets": tickets,
                    "answered_share": round(from_memory / tickets, 4) if tickets else None,
                    "status": state,
                }
            )
        labels[label] = rows
    return {
        "tenant": tenant,
        "calibrated": calibration is not None,
        "target": target,
        "fitted_at": calibration.fitted_at if calibration else None,
        "labels": labels,
        "unavailable": None,
    }


def stats(
    window: timedelta,
    buckets: int = 12,
    tenant: str | None = None,
    *,
    store: ReadModel,
    clock: Clock,
    pricing: Pricing = Pricing(),
    memory: Memory | None = None,
    calibrations: Calibrations | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """What the engine did over ``window``, from the store (authoritative across instances).

    Counts are aggregation queries per status, per answering path and per time bucket;
    times come from a projection of the newest classified tickets. ``counts`` is by current
    status (a corrected ticket is Corrected_By_Human); ``answered_by`` is by what answered,
    which a review does not change: the memory, an LLM, or the local classifier (which runs
    on the worker and is no LLM call). ``precision`` is the tenant's (``tenant``, else the
    default tenant) live precision table.
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
        classified = store.count(path=AnswerPath.CLASSIFIER, since=start, until=end)
        local = store.count(classifier=LOCAL_CLASSIFIER, since=start, until=end)
        series.append(
            {
                "start": start.isoformat(),
                "memory": store.count(path=AnswerPath.MEMORY, since=start, until=end),
                "llm": classified - local,
                "local_classifier": local,
            }
        )
    from_memory = sum(b["memory"] for b in series)
    by_llm = sum(b["llm"] for b in series)
    by_local = sum(b["local_classifier"] for b in series)
    answered = from_memory + by_llm + by_local
    calls, input_tokens, output_tokens = store.token_totals(since=since)
    measured = calls > 0 and input_tokens + output_tokens > 0
    per_call = (input_tokens + output_tokens) / calls if measured else pricing.tokens_per_call
    times = store.classification_times(since=since)
    precision = None
    if calibrations is not None:
        tenant = tenant or (settings.default_tenant if settings is not None else "default")
        target = settings.memory_target_precision if settings is not None else 0.97
        precision = memory_precision(tenant, store.answers(since=since), calibrations, target)
    return {
        "window_seconds": int(window.total_seconds()),
        "since": since.isoformat(),
        "counts": counts,
        "total": sum(counts.values()),
        "answered_by": {"memory": from_memory, "llm": by_llm, "local_classifier": by_local},
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
        "memory": memory_health(memory) if memory is not None else None,
        "precision": precision,
    }
