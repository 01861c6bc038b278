"""Fitting the calibrated decision on labelled history, offline (``triage calibrate`` and
``triage evaluate``). It reads and fits only: it must never touch the memory or a store (the
command stores what it returns).

* ``stream_evidence``: ticket by ticket in stream order, what the worker would have known: the
  local classifier's evidence (the engine's own classifier, its lexical head refitted every
  ``REFIT`` tickets on the earlier tickets only) and, per label, the decision's features
  (``decision.label_features``, exactly as ``decision.judge`` builds them).
* ``fit_logistic``: the probability model (a logistic regression, Newton's method, L2 penalty);
  the fitted model is a dict of plain floats, which ``decision.predict`` scores in plain Python.
* ``fit``: per label, that model and each value's bar (``precision.fit_thresholds``, on
  cross-fitted probabilities), with the (probability, right?) record each bar was fitted on.
* ``replay``: the honest replay of the decision along the stream: every ``REFIT`` tickets the
  model and the bars are fitted again on earlier tickets only and the next block is decided by
  ``decision.judge``, the worker's own verdict. Tickets before the first refit are not answered.
* ``fit_calibration``: the model and the bars on the whole history: what the worker reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..decision import FEATURES, Calibration, LabelCalibration, LabelEvidence, features_of, judge
from ..domain import LabelSource, Taxonomy
from ..ports import ClassificationRequest
from ..precision import expected_calibration_error, fit_thresholds, wilson_lower
from .datasets import LabelledRow
from .evaluation import Prepared, prepare

LABELS = ("category", "priority", "assignment_group")
REFIT = 100  # the worker refits as the memory grows; the replay every this many tickets
FOLDS = 5  # the bars are fitted on probabilities cross-fitted in this many folds
L2 = 1.0  # the model's penalty on its (standardised) weights: sklearn's C = 1
Z = 1.96  # the Wilson bound's z: 95%, two-sided
RECORD_LIMIT = 2000  # the highest-probability pairs kept with each value's bar, for the live check
TENANT = "replay"

Neighbours = list[tuple[float, dict[str, str], bool]]
Progress = Callable[[int], None]


# --------------------------------------------------------------------------- the probability model


def _fit(x: np.ndarray, y: np.ndarray, features: Sequence[str], l2: float, iterations: int) -> dict[str, Any] | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant feature: its weight stays 0 under the penalty
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not penalised
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -35, 35)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return {
        "features": list(features),
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
        "intercept": float(w[0]),
        "coef": [float(v) for v in w[1:]],
        "l2": l2,
        "fitted_on": len(y),
        "positives": int(y.sum()),
    }


def fit_logistic(
    rows: Sequence[Mapping[str, float]],
    outcomes: Sequence[int],
    *,
    features: Sequence[str] = FEATURES,
    l2: float = L2,
    iterations: int = 50,
) -> dict[str, Any] | None:
    """Logistic regression on standardised features, L2 penalty ``l2`` on the weights (not the
    intercept), by Newton's method. None where every outcome is the same (nothing to learn)."""
    x = np.array([[float(r[f]) for f in features] for r in rows], dtype=float).reshape(len(rows), len(features))
    return _fit(x, np.asarray(outcomes, dtype=float), features, l2, iterations)


def _probabilities(model: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """``decision.predict`` over many rows at once."""
    score = model["intercept"] + ((x - np.asarray(model["mean"])) / np.asarray(model["scale"])) @ np.asarray(
        model["coef"]
    )
    return 1.0 / (1.0 + np.exp(-np.clip(score, -35.0, 35.0)))


# --------------------------------------------------------------------------- evidence along the stream


@dataclasses.dataclass(frozen=True)
class LabelStream:
    """One label along the stream: per ticket, the proposed value, the true one and the features."""

    proposed: list[str]
    truth: list[str]
    features: np.ndarray  # (tickets, len(FEATURES))

    @property
    def correct(self) -> np.ndarray:
        return np.array([p == t for p, t in zip(self.proposed, self.truth, strict=True)], dtype=int)


@dataclasses.dataclass(frozen=True)
class Stream:
    """What the worker would have known of each ticket, in stream order."""

    labels: dict[str, LabelStream]
    neighbours: list[Neighbours]  # (similarity, the neighbour's labels, labelled by a human)
    evidence: list[dict[str, LabelEvidence]]  # the local classifier's, per label

    def __len__(self) -> int:
        return len(self.neighbours)


def stream_evidence(
    prepared: Prepared,
    taxonomy: Taxonomy,
    classifier: Any,
    labels: Sequence[str],
    *,
    refit: int = REFIT,
    progress: Progress | None = None,
) -> Stream:
    """Each ticket's evidence as the worker would have had it: its earlier neighbours, and the
    local classifier (``fit_head`` and ``evidence``, e.g. ``LocalEmbeddingClassifier``) with a
    lexical head fitted at every ``refit``-th ticket on the tickets before it."""
    neighbours: list[Neighbours] = []
    evidence: list[dict[str, LabelEvidence]] = []
    rows: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    for index, row in enumerate(prepared.rows):
        if index >= refit and index % refit == 0:
            classifier.fit_head(TENANT, ((r.text, r.labels, False) for r in prepared.rows[:index]))
        found = prepared.neighbours[index]
        request = ClassificationRequest(
            text=row.text,
            embedding=prepared.embeddings[index],
            examples=[],
            taxonomy=taxonomy,
            neighbours=found,
            tenant=TENANT,
        )
        said = classifier.evidence(request)
        seen = [
            (n.similarity, {label: getattr(n.labels, label) for label in LABELS}, n.label_source is LabelSource.HUMAN)
            for n in found
        ]
        neighbours.append(seen)
        evidence.append({label: said[label] for label in labels})
        for label in labels:
            rows[label].append(features_of(seen, said[label], label))
        if progress:
            progress(1)
    streams = {
        label: LabelStream(
            proposed=[e[label].proposed for e in evidence],
            truth=[getattr(r.labels, label) for r in prepared.rows],
            features=np.array([[r[f] for f in FEATURES] for r in rows[label]], dtype=float).reshape(-1, len(FEATURES)),
        )
        for label in labels
    }
    return Stream(streams, neighbours, evidence)


# --------------------------------------------------------------------------- fitting


@dataclasses.dataclass(frozen=True)
class LabelFit:
    calibration: LabelCalibration
    probabilities: np.ndarray  # cross-fitted, of the tickets fitted on: what the bars were fitted on
    correct: np.ndarray
    proposed: list[str]


def fit_label(
    stream: LabelStream,
    stop: int,
    *,
    target: float,
    z: float = Z,
    folds: int = FOLDS,
    l2: float = L2,
    record_limit: int | None = RECORD_LIMIT,
) -> LabelFit:
    """The model and the bars of one label, on tickets 0..stop-1 of the stream."""
    x, y, proposed = stream.features[:stop], stream.correct[:stop].astype(float), stream.proposed[:stop]
    cross = np.zeros(stop)
    model = None
    for fold in range(folds):
        held = np.arange(stop) % folds == fold
        fold_model = _fit(x[~held], y[~held], FEATURES, l2, 50)
        if fold_model is None:
            break
        cross[held] = _probabilities(fold_model, x[held])
    else:
        model = _fit(x, y, FEATURES, l2, 50)
    # The worker's probabilities are rounded to 4 places (decision.judge): the bars and records too.
    cross = np.round(cross, 4)
    outcomes = [int(o) for o in y]
    bars: dict[str, dict[str, Any]] = {}
    if model is not None:
        bars = fit_thresholds(cross.tolist(), outcomes, proposed, target=target, z=z)  # type: ignore[assignment]
        if record_limit:
            for value in bars:
                if value == "*":
                    continue
                pairs = sorted(
                    ([float(p), o] for p, o, v in zip(cross, outcomes, proposed, strict=True) if v == value),
                    key=lambda pair: -pair[0],
                )
                bars[value]["record"] = pairs[:record_limit]
    return LabelFit(LabelCalibration(model=model, thresholds=bars), cross, y.astype(int), list(proposed))


def fit(
    stream: Stream,
    *,
    tenant: str,
    target: float,
    stop: int | None = None,
    z: float = Z,
    record_limit: int | None = RECORD_LIMIT,
    fitted_at: str = "",
    source: str = "",
) -> tuple[Calibration, dict[str, LabelFit]]:
    """The calibration fitted on tickets 0..stop-1 (default: all), and each label's fit."""
    stop = len(stream) if stop is None else stop
    fits = {
        label: fit_label(labelled, stop, target=target, z=z, record_limit=record_limit)
        for label, labelled in stream.labels.items()
    }
    calibration = Calibration(
        tenant=tenant,
        target=target,
        labels={label: f.calibration for label, f in fits.items()},
        fitted_on=stop,
        fitted_at=fitted_at,
        source=source,
    )
    return calibration, fits


def fit_calibration(
    rows: list[LabelledRow],
    embeddings: np.ndarray,
    *,
    taxonomy: Taxonomy,
    classifier: Any,
    labels: Sequence[str],
    tenant: str,
    target: float,
    neighbours: int,
    seed: int = 0,
    fitted_at: str = "",
    source: str = "",
    progress: Progress | None = None,
) -> Calibration:
    """The tenant's calibration from its labelled history: the stream's evidence, then the model
    and the bars fitted on all of it."""
    prepared = prepare(rows, embeddings, neighbours=neighbours, seed=seed)
    stream = stream_evidence(prepared, taxonomy, classifier, labels, progress=progress)
    return fit(stream, tenant=tenant, target=target, fitted_at=fitted_at, source=source)[0]


# --------------------------------------------------------------------------- the honest replay


@dataclasses.dataclass(frozen=True)
class Replay:
    """The decision along the stream, each block decided by fits on earlier tickets only."""

    answered: np.ndarray  # (tickets,) every label answered from memory: no LLM call
    probability: dict[str, np.ndarray]  # per label, the decision's probability (0 before the first fit)
    label_answered: dict[str, np.ndarray]  # per label, its probability cleared its value's bar
    correct: dict[str, np.ndarray]  # per label, the proposed value is the true one
    last: Calibration | None  # the last block's fit

    @property
    def all_correct(self) -> np.ndarray:
        return np.logical_and.reduce([c.astype(bool) for c in self.correct.values()])

    @classmethod
    def undecided(cls, stream: Stream) -> Replay:
        """Nothing decided yet: the arrays ``decide`` fills block by block."""
        count, names = len(stream), list(stream.labels)
        return cls(
            answered=np.zeros(count, dtype=bool),
            probability={label: np.zeros(count) for label in names},
            label_answered={label: np.zeros(count, dtype=bool) for label in names},
            correct={label: stream.labels[label].correct for label in names},
            last=None,
        )


def decide(result: Replay, stream: Stream, calibration: Calibration, start: int, stop: int) -> None:
    """Tickets ``start``..``stop``-1 decided by ``decision.judge`` with ``calibration``, into
    ``result``'s arrays: a ticket avoids the LLM only with every label answered."""
    for index in range(start, stop):
        verdict = judge(stream.neighbours[index], stream.evidence[index], calibration)
        for label, said in verdict.labels.items():
            result.probability[label][index] = said.probability
            result.label_answered[label][index] = said.answered
        result.answered[index] = verdict.answered and set(verdict.labels) == set(result.correct)


def replay(
    stream: Stream, *, target: float, z: float = Z, refit: int = REFIT, progress: Progress | None = None
) -> Replay:
    count = len(stream)
    result, calibration = Replay.undecided(stream), None
    for start in range(refit, count, refit):
        calibration, _ = fit(stream, tenant=TENANT, target=target, stop=start, z=z, record_limit=None)
        decide(result, stream, calibration, start, min(start + refit, count))
        if progress:
            progress(min(refit, count - start))
    return dataclasses.replace(result, last=calibration)


# --------------------------------------------------------------------------- figures


def label_figures(result: Replay, cut: int) -> dict[str, dict[str, Any]]:
    """Per label, what the replay answered and how well its probability is calibrated on the
    tickets from ``cut`` on (expected calibration error, 10 equal-width bins); under "all", the
    product of the labels' probabilities against all of them right."""
    figures: dict[str, dict[str, Any]] = {}
    for label, answered in result.label_answered.items():
        correct, probability = result.correct[label], result.probability[label]
        count, right = int(answered.sum()), int(correct[answered].sum())
        figures[label] = {
            "answered_share": round(float(answered.mean()), 4) if len(answered) else 0.0,
            "answered": count,
            "precision": round(right / count, 4) if count else None,
            "precision_lower95": round(wilson_lower(right, count), 4) if count else None,
            "ece": round(expected_calibration_error(probability[cut:].tolist(), correct[cut:].tolist()), 4),
            "mean_probability": round(float(probability[cut:].mean()), 4) if cut < len(probability) else None,
            "accuracy": round(float(correct[cut:].mean()), 4) if cut < len(correct) else None,
        }
    if len(result.correct) > 1:
        joint = np.prod(list(result.probability.values()), axis=0)
        every = result.all_correct.astype(int)
        figures["all"] = {"ece": round(expected_calibration_error(joint[cut:].tolist(), every[cut:].tolist()), 4)}
    return figures


def hindsight(result: Replay, target: float, start: int = REFIT) -> dict[str, Any]:
    """The most one bar, chosen after the fact on the replay's own probabilities (every label's lowest,
    from ``start`` on, where fits exist), answers at ``target`` precision: what the probabilities'
    ranking allows one global bar, however it is chosen. A bar cannot split tied probabilities."""
    joint = np.min(np.vstack(list(result.probability.values())), axis=0)[start:]
    right = result.all_correct[start:].astype(int)
    order = np.argsort(-joint, kind="stable")
    ranked, correct = joint[order], np.cumsum(right[order])
    best = {"answered": 0, "correct": 0, "bar": None}
    for k in range(1, len(ranked) + 1):
        if (k == len(ranked) or ranked[k] != ranked[k - 1]) and correct[k - 1] >= target * k:
            best = {"answered": k, "correct": int(correct[k - 1]), "bar": round(float(ranked[k - 1]), 4)}
    total = len(result.answered)
    answered = best["answered"]
    return best | {
        "answered_share": round(answered / total, 4) if total else 0.0,
        "precision": round(best["correct"] / answered, 4) if answered else None,
    }


def bars(calibration: Calibration) -> dict[str, dict[str, dict[str, Any]]]:
    """Per label and value (and "*", the pooled bar): the bar and what it answered of the
    history it was fitted on (cross-fitted), without the record."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for label, fitted in calibration.labels.items():
        table[label] = {}
        for value, bar in sorted(fitted.thresholds.items()):
            answered, correct = int(bar.get("answered") or 0), int(bar.get("correct") or 0)
            table[label][value] = {
                "threshold": bar.get("threshold"),
                "answered": answered,
                "seen": int(bar.get("seen") or 0),
                "precision": round(correct / answered, 4) if answered else None,
                "lower95": round(float(bar.get("lower") or 0.0), 4) if answered else None,
                "source": "all" if value == "*" else bar.get("source", "none"),
            }
    return table
