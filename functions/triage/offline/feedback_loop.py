"""The loop production runs, replayed: does the audit sample bias the nightly refit?

In production the worker answers with the calibration ``triage calibrate --from-memory`` last
stored (the scheduled job, ``infra/calibrate.tf``), and that refit fits on what the memory holds
as history: every ticket the classifier of record (or a person) labelled, and the memory answers
an audit checked (``MEMORY_AUDIT_RATE`` of them); the other memory answers are the memory's own
guess and are left out. The easy tickets the memory answers are thus under-represented in the
history its next bars are fitted on, and more so the more it answers.

``loop`` replays exactly that along the stream: every ``every`` tickets (a night's tickets) the
calibration is fitted again, as ``calibrate --from-memory`` fits it (the history in its own
seed-order stream, the features from neighbours within it, every label and value's bar), on the
earlier tickets the memory would hold as history; the next ``every`` tickets are decided with it
by ``calibration.decide`` (``decision.judge``) on the evidence the worker had (its neighbours
among every earlier ticket).
Run with ``audit_rate`` 1 it is the same loop with every outcome known: the difference between
the two is the audit sample's effect alone. Nothing is answered before the first refit.

Approximation: every earlier ticket is in memory under its true label (as in ``replay``), where
in production a memory answer is stored under the memory's labels (right at the target's rate).
Like ``calibration``, it reads and fits only: it must never touch the memory or a store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..domain import Taxonomy
from .calibration import TENANT, Progress, Replay, Stream, decide, fit, stream_evidence
from .evaluation import Prepared, prepare


def loop(
    prepared: Prepared,
    stream: Stream,
    taxonomy: Taxonomy,
    classifier: Any,
    labels: Sequence[str],
    *,
    target: float,
    audit_rate: float,
    every: int,
    neighbours: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[Replay, list[dict[str, Any]]]:
    """The stream decided by nightly refits on the memory's own history; and, per refit, the
    history it was fitted on and what it answered of the next ``every`` tickets."""
    if not 0.0 <= audit_rate <= 1.0 or every < 1:
        raise ValueError("audit_rate is between 0 and 1, every at least 1")
    count = len(stream)
    audited = np.random.default_rng(seed).random(count) < audit_rate
    result, calibration = Replay.undecided(stream), None
    answered = result.answered
    nights: list[dict[str, Any]] = []
    for start in range(every, count, every):
        known = [i for i in range(start) if not answered[i] or audited[i]]
        history = prepare(
            [prepared.rows[i] for i in known], prepared.embeddings[known], neighbours=neighbours, seed=seed
        )
        calibration, _ = fit(
            stream_evidence(history, taxonomy, classifier, labels), tenant=TENANT, target=target, record_limit=None
        )
        stop = min(start + every, count)
        decide(result, stream, calibration, start, stop)
        nights.append(
            {
                "refit_at": start,
                "history": len(known),
                "memory_answers_before": int(answered[:start].sum()),
                "memory_answers_in_history": int((answered[:start] & audited[:start]).sum()),
                "answered_next": round(float(answered[start:stop].mean()), 4),
            }
        )
        if progress:
            progress(stop - start)
    return dataclasses.replace(result, last=calibration), nights
