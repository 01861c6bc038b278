"""One calibrated decision: may the memory answer this label without the LLM?

Pure and small, so the worker, ``triage calibrate`` / ``evaluate`` and the tests share it;
it must never do I/O or import a client library:

* ``label_features``: the evidence for one label of one ticket, a pure function of the
  neighbours the memory returned and the local classifier's output for that label;
* ``predict``: the probability that the proposed value is what the classifier of record would
  give, from a logistic regression on those features (fitted offline by
  ``offline.calibration.fit_logistic``; the model is a dict of plain floats, stored as JSON);
* ``Calibration``: a tenant's fitted decision (per label, the model and each value's bar, from
  ``precision.fit_thresholds``), and ``judge``: the verdict on one ticket, label by label.

Nothing here needs numpy: the worker scores with plain Python.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

# The neighbourhood's constants are the fixed policy's defaults (policy.MemoryPolicy), not tuned here.
NEAR_DUPLICATE = 0.97
CLOSE = 0.45
CLOSE_TOP = 10
EXPONENT = 4.0
HUMAN_WEIGHT = 2.0
EPS = 1e-4

FEATURES = (
    "blend_logit",  # the local classifier's probability of the proposed value (logit)
    "blend_margin",  # minus the runner-up's
    "vote_share",  # weighted (sim ** 4, a human x2) share of the neighbours voting for it
    "head_logit",  # the lexical head's probability (logit), 0 without a head
    "head_top",  # the head's own first choice is the proposed value
    "head_missing",  # no head fitted yet (or no head for this label)
    "taxonomy_p",  # the taxonomy prior's probability
    "taxonomy_top",  # the taxonomy prior's first choice is the proposed value
    "top1_sim",  # similarity of the nearest neighbour
    "top1_agrees",  # the nearest neighbour carries the proposed value
    "best_same",  # similarity of the nearest neighbour that carries it (0 if none)
    "best_other",  # similarity of the nearest neighbour that does not (0 if none)
    "near_dup_agree",  # a near-duplicate (>= 0.97) carries it and none contradicts
    "near_dup_conflict",  # near-duplicates disagree among themselves or with it
    "close_agree",  # of the 10 nearest at >= 0.45, those agreeing (/10)
    "close_disagree",  # of the 10 nearest at >= 0.45, those disagreeing (/10)
    "log_memory",  # log(1 + labelled tickets the head was fitted on)
    "log_share",  # log of the proposed value's share of those tickets (add-one smoothed)
)


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def _first(distribution: Mapping[str, float]) -> str | None:
    return max(distribution, key=distribution.__getitem__) if distribution else None


def label_features(
    neighbours: Sequence[tuple[float, str, bool]],
    proposed: str,
    blend: Mapping[str, float],
    *,
    head: Mapping[str, float] | None = None,
    taxonomy: Mapping[str, float] | None = None,
    memory_size: int = 0,
    value_count: int = 0,
    values: int = 1,
) -> dict[str, float]:
    """Evidence that ``proposed`` is the right value of one label.

    ``neighbours``: (similarity, the neighbour's value of this label, labelled by a human);
    ``blend``: the local classifier's probabilities for this label; ``head`` and
    ``taxonomy``: its lexical head's and taxonomy prior's (None where it has none);
    ``memory_size``, ``value_count``, ``values``: labelled tickets in memory when the head was
    last fitted, how many of them carry ``proposed``, how many values the label has."""
    ranked = sorted(neighbours, key=lambda n: -n[0])
    weights: dict[str, float] = {}
    for similarity, value, human in ranked:
        weights[value] = weights.get(value, 0.0) + max(similarity, 0.0) ** EXPONENT * (HUMAN_WEIGHT if human else 1.0)
    total = sum(weights.values())
    p = blend.get(proposed, 0.0)
    runner_up = max((v for k, v in blend.items() if k != proposed), default=0.0)
    same = [s for s, v, _ in ranked if v == proposed]
    other = [s for s, v, _ in ranked if v != proposed]
    near = [(s, v) for s, v, _ in ranked if s >= NEAR_DUPLICATE]
    close = [(s, v) for s, v, _ in ranked[:CLOSE_TOP] if s >= CLOSE]
    return {
        "blend_logit": _logit(p),
        "blend_margin": p - runner_up,
        "vote_share": weights.get(proposed, 0.0) / total if total > 0 else 0.0,
        "head_logit": _logit(head.get(proposed, 0.0)) if head else 0.0,
        "head_top": float(bool(head) and _first(head) == proposed),
        "head_missing": float(not head),
        "taxonomy_p": taxonomy.get(proposed, 0.0) if taxonomy else 0.0,
        "taxonomy_top": float(bool(taxonomy) and _first(taxonomy) == proposed),
        "top1_sim": ranked[0][0] if ranked else 0.0,
        "top1_agrees": float(bool(ranked) and ranked[0][1] == proposed),
        "best_same": same[0] if same else 0.0,
        "best_other": other[0] if other else 0.0,
        "near_dup_agree": float(bool(near) and all(v == proposed for _, v in near)),
        "near_dup_conflict": float(any(v != proposed for _, v in near)),
        "close_agree": sum(1 for _, v in close if v == proposed) / CLOSE_TOP,
        "close_disagree": sum(1 for _, v in close if v != proposed) / CLOSE_TOP,
        "log_memory": math.log1p(memory_size),
        "log_share": math.log((value_count + 1) / (memory_size + values)),
    }


# --------------------------------------------------------------------------- probability model


def predict(model: Mapping[str, object] | None, row: Mapping[str, float]) -> float:
    """The probability that the proposed value is right; 0 without a model."""
    if model is None:
        return 0.0
    score = float(model["intercept"])  # type: ignore[arg-type]
    for name, mean, scale, coef in zip(model["features"], model["mean"], model["scale"], model["coef"], strict=True):  # type: ignore[call-overload]
        score += coef * (float(row[name]) - mean) / scale
    score = max(min(score, 35.0), -35.0)
    return 1.0 / (1.0 + math.exp(-score))


# --------------------------------------------------------------------------- the worker's verdict


@dataclasses.dataclass(frozen=True)
class LabelEvidence:
    """What the local classifier says of one label of one ticket: its distribution over the
    label's values (the blend it answers with, and its parts where it has them)."""

    blend: Mapping[str, float]
    head: Mapping[str, float] | None = None
    taxonomy: Mapping[str, float] | None = None
    memory_size: int = 0  # labelled tickets the classifier's head was fitted on
    value_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)  # per value, among those

    @property
    def proposed(self) -> str:
        return max(self.blend, key=self.blend.__getitem__)


@dataclasses.dataclass(frozen=True)
class LabelCalibration:
    model: Mapping[str, Any] | None  # the logistic model (fit_logistic's dict); None: never answers
    thresholds: Mapping[str, Mapping[str, Any]]  # per value: threshold (None: no bar), its record, source

    def bar(self, value: str) -> float | None:
        found = self.thresholds.get(value, {}).get("threshold")
        return None if found is None else float(found)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A tenant's fitted decision (``triage calibrate``): per label, the model and each value's bar."""

    tenant: str
    target: float
    labels: Mapping[str, LabelCalibration]
    fitted_on: int = 0  # tickets of history
    fitted_at: str = ""
    source: str = ""  # the history file

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        labels = {
            name: LabelCalibration(model=label.get("model"), thresholds=dict(label.get("thresholds") or {}))
            for name, label in (data.get("labels") or {}).items()
        }
        return cls(
            tenant=str(data["tenant"]),
            target=float(data["target"]),
            labels=labels,
            fitted_on=int(data.get("fitted_on") or 0),
            fitted_at=str(data.get("fitted_at") or ""),
            source=str(data.get("source") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "target": self.target,
            "fitted_on": self.fitted_on,
            "fitted_at": self.fitted_at,
            "source": self.source,
            "labels": {
                name: {"model": dict(label.model) if label.model else None, "thresholds": dict(label.thresholds)}
                for name, label in self.labels.items()
            },
        }


@dataclasses.dataclass(frozen=True)
class LabelVerdict:
    value: str
    probability: float
    threshold: float | None

    @property
    def answered(self) -> bool:
        return self.threshold is not None and self.probability >= self.threshold


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Per calibrated label: the proposed value, its probability and its value's bar."""

    labels: Mapping[str, LabelVerdict]

    @property
    def answered(self) -> bool:
        """The memory answers only when every calibrated label clears its own bar."""
        return bool(self.labels) and all(v.answered for v in self.labels.values())

    @property
    def probability(self) -> float:
        return min((v.probability for v in self.labels.values()), default=0.0)

    def reason(self) -> str:
        return "; ".join(
            f"{label} {v.value} p={v.probability:.3f} "
            + (f"{'>=' if v.answered else '<'} bar {v.threshold:.3f}" if v.threshold is not None else "(no bar)")
            for label, v in self.labels.items()
        )


def judge(
    neighbours: Sequence[tuple[float, Mapping[str, str], bool]],
    evidence: Mapping[str, LabelEvidence],
    calibration: Calibration,
) -> Verdict:
    """The verdict on each label the calibration covers. ``neighbours``: (similarity, the
    neighbour's labels by name, labelled by a human); ``evidence``: the local classifier's, per label."""
    verdicts = {}
    for label, fitted in calibration.labels.items():
        found = evidence.get(label)
        if found is None or not found.blend:
            continue
        row = features_of(neighbours, found, label)
        verdicts[label] = LabelVerdict(found.proposed, predict(fitted.model, row), fitted.bar(found.proposed))
    return Verdict(verdicts)


def features_of(
    neighbours: Sequence[tuple[float, Mapping[str, str], bool]], evidence: LabelEvidence, label: str
) -> dict[str, float]:
    """The features ``judge`` scores for one label; calibration fits on the very same."""
    proposed = evidence.proposed
    return label_features(
        [(similarity, labels[label], human) for similarity, labels, human in neighbours if label in labels],
        proposed,
        evidence.blend,
        head=evidence.head,
        taxonomy=evidence.taxonomy,
        memory_size=evidence.memory_size,
        value_count=int(evidence.value_counts.get(proposed, 0)),
        values=len(evidence.blend),
    )
