"""The memories ``triage evaluate`` measures the calibrated decision against, on the same stream
(each ticket sees only the tickets before it; whatever is fitted is fitted on those):

* **today's fixed policy**: ``policy.decide`` with the MEMORY_* settings (near-duplicate, or a
  neighbourhood vote on the category); an answer copies the matched ticket's labels;
* **GPTCache-style**: the nearest ticket's labels when its cosine is at least 0.80;
* **ServiceNow-style**: TF-IDF and a calibrated linear model per label
  (``CalibratedClassifierCV(LinearSVC(), method="sigmoid")``), each class answered above its own
  bar, derived from a target precision on out-of-fold probabilities of earlier tickets, as
  ServiceNow derives a threshold per class from the precision an admin sets; refitted every
  ``refit`` tickets. ``bare``: the class's measured precision at the bar meets the target, as
  ServiceNow does; ``guarded``: its Wilson 95% lower bound does, the rule our bars follow.

Pure replays over a prepared stream: this module must never touch the memory or a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import policy as policy_module
from ..policy import MemoryPolicy
from ..precision import threshold_for
from .evaluation import Prepared, StreamAnswers

Progress = Callable[[int], None]


def _truth(prepared: Prepared, label: str) -> np.ndarray:
    return np.array([getattr(r.labels, label) for r in prepared.rows], dtype=object)


def fixed_policy(prepared: Prepared, memory_policy: MemoryPolicy, labels: Sequence[str]) -> StreamAnswers:
    """Today's fixed policy: a hit copies the matched ticket's labels, every one unchecked."""
    count = len(prepared.rows)
    answered = np.zeros(count, dtype=bool)
    right = {label: np.zeros(count, dtype=bool) for label in labels}
    for index, (row, neighbours) in enumerate(zip(prepared.rows, prepared.neighbours, strict=True)):
        decision = policy_module.decide(neighbours, memory_policy)
        if decision.hit and decision.labels is not None:
            answered[index] = True
            for label in labels:
                right[label][index] = getattr(decision.labels, label) == getattr(row.labels, label)
    return StreamAnswers(answered, right)


def nearest_neighbour(prepared: Prepared, threshold: float, labels: Sequence[str]) -> StreamAnswers:
    """GPTCache's design: the single nearest ticket's labels above one fixed cosine."""
    count = len(prepared.rows)
    answered = np.zeros(count, dtype=bool)
    right = {label: np.zeros(count, dtype=bool) for label in labels}
    for index, (row, neighbours) in enumerate(zip(prepared.rows, prepared.neighbours, strict=True)):
        if neighbours and neighbours[0].similarity >= threshold:
            answered[index] = True
            for label in labels:
                right[label][index] = getattr(neighbours[0].labels, label) == getattr(row.labels, label)
    return StreamAnswers(answered, right)


def _bare_bar(probabilities: np.ndarray, outcomes: np.ndarray, target: float) -> float | None:
    """The lowest bar at which the precision of the answers at or above it is >= target."""
    order = np.argsort(-probabilities, kind="stable")
    ranked, correct = probabilities[order], np.cumsum(outcomes[order])
    best = None
    for index, p in enumerate(ranked):
        if index + 1 < len(ranked) and ranked[index + 1] == p:
            continue  # a bar cannot split tied probabilities
        if correct[index] / (index + 1) >= target:
            best = float(p)
    return best


def _servicenow_label(
    texts: Sequence[str], truth: np.ndarray, *, refit: int, target: float, folds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ticket: the predicted class is right, answered at the bare bar, at the guarded bar."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.svm import LinearSVC

    count = len(texts)
    right = np.zeros(count, dtype=bool)
    bare = np.zeros(count, dtype=bool)
    guarded = np.zeros(count, dtype=bool)
    for start in range(refit, count, refit):
        stop = min(start + refit, count)
        labels = truth[:start]
        classes, counts = np.unique(labels, return_counts=True)
        keep = np.isin(labels, classes[counts >= 2 * folds])  # a class needs members in every fold
        if len(np.unique(labels[keep])) < 2:
            continue
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x = vectorizer.fit_transform([texts[i] for i in np.flatnonzero(keep)])
        y = labels[keep].astype(str)
        model = CalibratedClassifierCV(LinearSVC(), cv=folds, method="sigmoid")
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        held_out = cross_val_predict(model, x, y, cv=split, method="predict_proba")
        model.fit(x, y)
        known = model.classes_
        said, sureness = known[held_out.argmax(axis=1)], held_out.max(axis=1)
        outcome = (said == y).astype(int)
        bars_bare, bars_guarded = {}, {}
        for value in known:
            mine = said == value
            bars_bare[value] = _bare_bar(sureness[mine], outcome[mine], target)
            bars_guarded[value] = threshold_for(list(sureness[mine]), list(outcome[mine]), target=target)["threshold"]
        probabilities = model.predict_proba(vectorizer.transform(texts[start:stop]))
        predicted, confidence = known[probabilities.argmax(axis=1)], probabilities.max(axis=1)
        for offset, (value, p) in enumerate(zip(predicted, confidence, strict=True)):
            index = start + offset
            right[index] = value == truth[index]
            bare[index] = bars_bare.get(value) is not None and p >= bars_bare[value]
            guarded[index] = bars_guarded.get(value) is not None and p >= bars_guarded[value]  # type: ignore[operator]
    return right, bare, guarded


def servicenow(
    prepared: Prepared,
    labels: Sequence[str],
    *,
    target: float,
    refit: int = 100,
    folds: int = 3,
    progress: Progress | None = None,
) -> tuple[StreamAnswers, StreamAnswers]:
    """The ServiceNow-style memory, with bare and with Wilson-guarded per-class bars. A ticket is
    answered when every label's predicted class clears its bar."""
    texts = [r.text for r in prepared.rows]
    rights, bares, guardeds = {}, [], []
    for label in labels:
        right, bare, guarded = _servicenow_label(
            texts, _truth(prepared, label), refit=refit, target=target, folds=folds
        )
        rights[label] = right
        bares.append(bare)
        guardeds.append(guarded)
        if progress:
            progress(1)
    return (
        StreamAnswers(np.logical_and.reduce(bares), rights),
        StreamAnswers(np.logical_and.reduce(guardeds), rights),
    )
