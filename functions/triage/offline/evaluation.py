"""Offline replay of a labelled dataset: what the memory and the local classifier would do.

* **Stream replay**: tickets arrive one by one in a fixed shuffled order (numpy
  seed-0 permutation), each earlier ticket already in memory under its true label.
  A memory (the calibrated decision, ``offline.calibration``; the baselines,
  ``offline.baselines``) answers some tickets without the LLM. Figures: the share of LLM
  calls avoided (every scored label answered from memory) and the precision of those
  answers (every scored label right), with each label's own precision.
* **Held-out split**: the first 80% of that order is the memory, the last 20% is
  classified by the local classifier (the worker's own class) from its nearest
  neighbours. Figures: accuracy and macro-F1, beside 1-nearest-neighbour and TF-IDF + LinearSVC.

Neighbours are found exactly (brute-force cosine on unit vectors), which is what an
approximate index like Chroma's HNSW aims at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .. import policy as policy_module
from ..domain import LabelSource, Neighbour, Taxonomy
from ..precision import wilson_lower
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
    def precision(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def lower(self) -> float | None:
        """The precision's 95% Wilson lower bound."""
        return wilson_lower(self.correct, self.answered) if self.answered else None


@dataclasses.dataclass(frozen=True)
class StreamAnswers:
    """One memory's answers along the stream: per ticket, answered without the LLM, and per
    scored label whether the value it gave (or would give) is right."""

    answered: np.ndarray  # (tickets,) bool
    right: Mapping[str, np.ndarray]  # per label, (tickets,) bool

    def figures(self, start: int = 0, stop: int | None = None) -> MemoryFigures:
        answered = self.answered[start:stop]
        every = np.logical_and.reduce([r[start:stop] for r in self.right.values()])
        return MemoryFigures(len(answered), int(answered.sum()), int((answered & every).sum()))

    def label_precision(self) -> dict[str, float | None]:
        """Each label's precision over the tickets answered from memory."""
        if not self.answered.any():
            return dict.fromkeys(self.right)
        return {label: float(right[self.answered].mean()) for label, right in self.right.items()}


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


# --------------------------------------------------------------------------- figures


def system_figures(answers: StreamAnswers | None, classifier: ClassifierFigures | None, cut: int) -> dict:
    """One system's row: its memory answers over the whole stream and from ``cut`` on (whatever
    it fitted still fitted on earlier tickets), and its held-out accuracy and macro-F1."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    figures: dict = dict.fromkeys(
        ("llm_calls_avoided", "memory_answers", "memory_precision", "memory_precision_lower95")
    )
    figures |= {"per_label_precision": None, "tail": None}
    if answers is not None:
        whole, tail = answers.figures(), answers.figures(cut)
        figures |= {
            "llm_calls_avoided": round(whole.answered_share, 4),
            "memory_answers": whole.answered,
            "memory_precision": rounded(whole.precision),
            "memory_precision_lower95": rounded(whole.lower),
            "per_label_precision": {k: rounded(v) for k, v in answers.label_precision().items()},
            "tail": {
                "tickets": tail.tickets,
                "llm_calls_avoided": round(tail.answered_share, 4),
                "memory_precision": rounded(tail.precision),
            },
        }
    figures |= {
        "accuracy": None if classifier is None else round(classifier.accuracy, 4),
        "macro_f1": None if classifier is None else round(classifier.macro_f1, 4),
    }
    return figures
