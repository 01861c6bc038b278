"""Offline replay of a labelled dataset: what the memory and the local classifier would do.

* **Stream replay**: tickets arrive one by one in a fixed shuffled order (numpy
  seed-0 permutation), each earlier ticket already in memory under its true label;
  the decision policy (``policy.decide``, the worker's own code) answers from memory
  or not. Figures: the share of LLM calls avoided and the precision of the answers.
* **Held-out split**: the first 80% of that order is the memory, the last 20% is
  classified by the local classifier (the worker's own class) from its nearest
  neighbours. Figures: accuracy and macro-F1.

The same figures are computed for two baselines in the same run: a fixed
1-nearest-neighbour threshold at 0.80 (GPTCache's default) and TF-IDF + LinearSVC.
Neighbours are found exactly (brute-force cosine on unit vectors), which is what an
approximate index like Chroma's HNSW aims at.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import numpy as np

from .. import policy as policy_module
from ..domain import LabelSource, Neighbour, Taxonomy
from ..policy import MemoryPolicy
from .datasets import LabelledRow

Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A dataset in stream order with its embeddings and every ticket's earlier neighbours."""

    rows: list[LabelledRow]
    embeddings: np.ndarray
    neighbours: list[list[Neighbour]]  # for ticket i: its nearest among tickets 0..i-1


@dataclasses.dataclass(frozen=True)
class MemoryFigures:
    tickets: int
    answered: int
    correct: int

    @property
    def answered_share(self) -> float:
        return self.answered / self.tickets if self.tickets else 0.0

    @property
    def precision(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


@dataclasses.dataclass(frozen=True)
class ClassifierFigures:
    tickets: int
    accuracy: float
    macro_f1: float


def stream_order(count: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).permutation(count)


def nearest_earlier(embeddings: np.ndarray, k: int, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each row i, the indices and similarities of its k nearest rows among 0..i-1
    (index -1 where there are fewer)."""
    count = len(embeddings)
    indices = np.full((count, k), -1, dtype=np.int64)
    similarities = np.full((count, k), -np.inf)
    for start in range(0, count, block):
        stop = min(start + block, count)
        scores = embeddings[start:stop] @ embeddings[:stop].T
        rows = np.arange(start, stop)
        scores[np.arange(stop)[None, :] >= rows[:, None]] = -np.inf  # only earlier tickets
        take = min(k, stop)
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        valid = np.isfinite(top_scores)
        indices[start:stop, :take] = np.where(valid, top, -1)
        similarities[start:stop, :take] = top_scores
    return indices, similarities


def _neighbour(rows: Sequence[LabelledRow], index: int, similarity: float) -> Neighbour:
    row = rows[index]
    return Neighbour(row.row_id, float(similarity), row.labels, LabelSource.IMPORTED, row.text)


def prepare(rows: list[LabelledRow], embeddings: np.ndarray, *, neighbours: int, seed: int = 0) -> Prepared:
    order = stream_order(len(rows), seed)
    ordered_rows = [rows[i] for i in order]
    ordered = np.asarray(embeddings, dtype=np.float32)[order]
    indices, similarities = nearest_earlier(ordered, neighbours)
    lists = [
        [_neighbour(ordered_rows, j, s) for j, s in zip(indices[i], similarities[i], strict=True) if j >= 0]
        for i in range(len(ordered_rows))
    ]
    return Prepared(ordered_rows, ordered, lists)


def replay(
    prepared: Prepared,
    memory_policy: MemoryPolicy,
    progress: Progress | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> MemoryFigures:
    """The policy over tickets ``start``..``stop`` of the stream (each still sees every earlier one)."""
    answered = correct = 0
    rows, lists = prepared.rows[start:stop], prepared.neighbours[start:stop]
    for row, neighbours in zip(rows, lists, strict=True):
        decision = policy_module.decide(neighbours, memory_policy)
        if decision.hit:
            answered += 1
            correct += decision.labels.category == row.labels.category  # type: ignore[union-attr]
        if progress:
            progress(1)
    return MemoryFigures(len(rows), answered, correct)


def replay_fixed_threshold(prepared: Prepared, threshold: float = 0.80) -> MemoryFigures:
    """GPTCache's design: answer with the single nearest ticket's label above a threshold."""
    answered = correct = 0
    for row, neighbours in zip(prepared.rows, prepared.neighbours, strict=True):
        if neighbours and neighbours[0].similarity >= threshold:
            answered += 1
            correct += neighbours[0].labels.category == row.labels.category
    return MemoryFigures(len(prepared.rows), answered, correct)


# --------------------------------------------------------------------------- held-out split


def _figures(truth: Sequence[str], predicted: Sequence[str]) -> ClassifierFigures:
    from sklearn.metrics import accuracy_score, f1_score

    return ClassifierFigures(
        tickets=len(truth),
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, average="macro", zero_division=0)),
    )


def split(prepared: Prepared, train_fraction: float = 0.8) -> int:
    return int(len(prepared.rows) * train_fraction)


def held_out_local(
    prepared: Prepared,
    taxonomy: Taxonomy,
    classifier_factory: Callable[[], object],
    *,
    neighbours: int,
    few_shot_max_examples: int,
    few_shot_max_chars: int,
    train_fraction: float = 0.8,
    progress: Progress | None = None,
) -> tuple[ClassifierFigures, ClassifierFigures]:
    """The local classifier and the 1-nearest-neighbour baseline on the last 20%, with the
    first 80% as the memory."""
    from ..ports import ClassificationRequest

    cut = split(prepared, train_fraction)
    train, test = prepared.embeddings[:cut], prepared.embeddings[cut:]
    classifier = classifier_factory()
    classifier.fit_head(  # type: ignore[attr-defined]
        "evaluation", ((r.text, r.labels.category, False) for r in prepared.rows[:cut])
    )
    truth, local, nearest = [], [], []
    for start in range(0, len(test), 256):
        scores = test[start : start + 256] @ train.T
        top = np.argsort(-scores, axis=1)[:, :neighbours]
        for offset, candidates in enumerate(top):
            index = cut + start + offset
            row = prepared.rows[index]
            found = [_neighbour(prepared.rows, int(j), scores[offset, j]) for j in candidates]
            examples = policy_module.select_examples(
                found, max_examples=few_shot_max_examples, max_chars=few_shot_max_chars
            )
            answer = classifier.classify(  # type: ignore[attr-defined]
                ClassificationRequest(
                    text=row.text,
                    embedding=prepared.embeddings[index],
                    examples=examples,
                    taxonomy=taxonomy,
                    neighbours=found,
                    tenant="evaluation",
                )
            )
            truth.append(row.labels.category)
            local.append(answer.labels.category)
            nearest.append(found[0].labels.category)
            if progress:
                progress(1)
    return _figures(truth, local), _figures(truth, nearest)


def held_out_tfidf_svm(prepared: Prepared, train_fraction: float = 0.8) -> ClassifierFigures:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    cut = split(prepared, train_fraction)
    texts = [r.text for r in prepared.rows]
    labels = [r.labels.category for r in prepared.rows]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LinearSVC().fit(vectorizer.fit_transform(texts[:cut]), labels[:cut])
    return _figures(labels[cut:], list(model.predict(vectorizer.transform(texts[cut:]))))


# --------------------------------------------------------------------------- calibrate


CALIBRATION_GRID = {
    "near_duplicate_similarity": (0.95, 0.97, 0.99),
    "agreement_neighbours": (5, 7, 10),
    "agreement_similarity": (0.40, 0.45, 0.50, 0.55, 0.60),
    "agreement_min_voters": (3, 4, 5, 6),
    "agreement_share": (0.85, 0.9, 1.0),
    "similarity_exponent": (1.0, 4.0),
}


@dataclasses.dataclass(frozen=True)
class CalibrationPoint:
    policy: MemoryPolicy
    figures: MemoryFigures


def calibration_grid(base: MemoryPolicy) -> list[MemoryPolicy]:
    keys = list(CALIBRATION_GRID)
    policies = []
    for values in itertools.product(*(CALIBRATION_GRID[k] for k in keys)):
        settings = dict(zip(keys, values, strict=True))
        if settings["agreement_min_voters"] > settings["agreement_neighbours"]:
            continue
        policies.append(dataclasses.replace(base, **settings))
    return policies


def calibrate(
    prepared: Prepared,
    policies: Sequence[MemoryPolicy],
    progress: Progress | None = None,
    *,
    stop: int | None = None,
) -> list[CalibrationPoint]:
    """Each policy replayed over the stream up to ``stop`` (the rest can check the choice)."""
    points = []
    for candidate in policies:
        points.append(CalibrationPoint(candidate, replay(prepared, candidate, stop=stop)))
        if progress:
            progress(1)
    return points


def frontier(points: Sequence[CalibrationPoint]) -> list[CalibrationPoint]:
    """The trade-off curve: points no other point beats on both share answered and precision."""
    ordered = sorted(points, key=lambda p: (-p.figures.answered_share, -p.figures.precision))
    curve: list[CalibrationPoint] = []
    best_precision = -1.0
    for point in ordered:
        if point.figures.precision > best_precision:
            curve.append(point)
            best_precision = point.figures.precision
    return list(reversed(curve))


def choose(points: Sequence[CalibrationPoint], target_precision: float) -> CalibrationPoint | None:
    eligible = [p for p in points if p.figures.answered and p.figures.precision >= target_precision]
    if not eligible:
        return None
    return max(eligible, key=lambda p: (p.figures.answered, p.figures.precision))
