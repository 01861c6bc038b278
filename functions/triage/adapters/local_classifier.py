"""The embedded default classifier: no API key, no network.

It weighs three kinds of evidence, each by how much of it there is:

* **the taxonomy**: each category's name, description and example phrases are
  embedded once; the ticket's cosine similarity to them gives a prediction even on
  an empty memory;
* **the nearest labelled tickets** the worker fetched from the memory: a vote in
  which each counts similarity ** 4 (a human's label twice), so a correction
  changes the next similar ticket's answer at once, without retraining;
* **a lexical head** fitted on the tenant's memory once it holds enough labelled
  tickets (TF-IDF of words and word pairs, a linear SVM): keywords that embeddings
  blur. It is refitted in the background as the memory grows, so a correction
  reaches it within ``head_refresh_seconds``; the neighbour vote carries it before.

Priority and assignment group come from the neighbours' vote; with no labelled
neighbours they are the taxonomy's default priority and the category's group.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from ..decision import LabelEvidence
from ..domain import LOCAL_CLASSIFIER, AnswerPath, Classification, Labels, LabelSource, Neighbour, Taxonomy, vote_weight
from ..ports import ClassificationRequest, Embedder, Memory

log = logging.getLogger(__name__)

NAME = LOCAL_CLASSIFIER


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    shifted = (scores - scores.max()) / temperature
    weights = np.exp(shifted)
    return weights / weights.sum()


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The local classifier's view of one ticket, label by label."""

    names: list[str]  # the taxonomy's categories, in order
    probabilities: np.ndarray  # of each category: the taxonomy, the neighbours and the head, blended
    description_scores: np.ndarray  # each category's description and examples against the ticket
    from_neighbours: np.ndarray  # the neighbours' weighted vote, normalised
    from_head: np.ndarray | None  # the lexical head's probabilities, once fitted
    blend: float  # how much the memory (neighbours and head) weighs against the taxonomy
    neighbours: list[Neighbour]
    priority_scores: dict[str, float]  # the neighbours' weighted priority vote, plus the default's prior
    group_votes: dict[str, dict[str, float]]  # per category, the neighbours' weighted group vote
    from_taxonomy: np.ndarray | None = None  # the taxonomy prior alone
    head_counts: Counter[str] | None = None  # tickets per category the head was fitted on
    head_value_counts: dict[str, Counter[str]] | None = None  # per label, tickets per value (where known)


class LexicalHead:
    """TF-IDF (1-2 grams, sublinear tf) and two linear SVMs over one tenant's labelled memory: one
    as the memory is (the posterior, for the decision's evidence), one class-balanced (rare
    categories weigh as much as frequent ones, for the classifier's own answer)."""

    def __init__(
        self,
        vectorizer: object,
        posterior: object,
        balanced: object,
        counts: Counter[str],
        value_counts: dict[str, Counter[str]] | None = None,
    ):
        self._vectorizer = vectorizer
        self._models = {False: posterior, True: balanced}
        self.counts = counts  # tickets per category the head was fitted on
        # per label (category, priority, assignment_group), tickets per value: the decision's evidence
        self.value_counts = {"category": counts, **(value_counts or {})}
        self.size = sum(counts.values())
        self.fitted_at = time.monotonic()

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        categories: Sequence[str],
        weights: Sequence[float],
        labels: Sequence[Labels] | None = None,
    ) -> LexicalHead | None:
        if len(set(categories)) < 2:
            return None
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200_000)
        features = vectorizer.fit_transform(texts)
        sample_weight = np.asarray(weights)
        posterior = LinearSVC().fit(features, list(categories), sample_weight=sample_weight)
        balanced = LinearSVC(class_weight="balanced").fit(features, list(categories), sample_weight=sample_weight)
        value_counts = None
        if labels:
            value_counts = {
                "priority": Counter(label.priority for label in labels),
                "assignment_group": Counter(label.assignment_group for label in labels),
            }
        return cls(vectorizer, posterior, balanced, Counter(categories), value_counts)

    def probabilities(self, text: str, names: Sequence[str], temperature: float, *, balanced: bool) -> np.ndarray:
        model = self._models[balanced]
        margins = model.decision_function(self._vectorizer.transform([text]))[0]  # type: ignore[attr-defined]
        classes = list(model.classes_)  # type: ignore[attr-defined]
        if len(classes) == 2:  # a binary SVM gives one margin, for the second class
            margins = np.array([-margins, margins])
        known = _softmax(np.asarray(margins, dtype=float), temperature)
        return np.array([known[classes.index(name)] if name in classes else 0.0 for name in names])

    def class_weights(self, names: Sequence[str]) -> np.ndarray:
        """sklearn's 'balanced' weights n / (K n_c) over the categories present (1 elsewhere)."""
        counts = np.array([self.counts.get(name, 0) for name in names], dtype=float)
        present = counts > 0
        weights = np.ones(len(names))
        if present.sum() >= 2:
            weights[present] = counts[present].sum() / (present.sum() * counts[present])
        return weights


class LocalEmbeddingClassifier:
    name = NAME

    def __init__(
        self,
        embedder: Embedder,
        *,
        memory: Memory | None = None,
        # On the taxonomy alone the classifier is often unsure: a soft softmax keeps its
        # confidence near its accuracy (replay of the IT set: mean 0.45 vs accuracy 0.34).
        temperature: float = 0.08,
        similarity_exponent: float = 4.0,
        prior_strength: float = 0.1,
        human_weight: float = 2.0,
        head_share: float = 0.5,
        head_temperature: float = 0.2,
        head_min_entries: int = 50,
        head_refresh_seconds: float = 900.0,
    ):
        self._embedder = embedder
        self._memory = memory
        self._temperature = temperature
        self._exponent = similarity_exponent
        self._prior_strength = prior_strength
        self._human_weight = human_weight
        self._head_share = head_share
        self._head_temperature = head_temperature
        self._head_min_entries = head_min_entries
        self._head_refresh_seconds = head_refresh_seconds
        self._prototypes: dict[Taxonomy, list[np.ndarray]] = {}
        self._heads: dict[str, LexicalHead | None] = {}
        self._refitting: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ evidence

    def _prototypes_for(self, taxonomy: Taxonomy) -> list[np.ndarray]:
        """Per category, the embeddings of its name with description, and of its examples."""
        with self._lock:
            if taxonomy not in self._prototypes:
                self._prototypes[taxonomy] = [
                    np.asarray(self._embedder.embed([f"{c.name}: {c.description}", *c.examples]))
                    for c in taxonomy.categories
                ]
            return self._prototypes[taxonomy]

    def fit_head(self, tenant: str, entries: Iterable[tuple[str, str | Labels, bool]]) -> LexicalHead | None:
        """Fit the lexical head of a tenant from (text, category or all its labels, verified by a
        human) now. With all the labels the head also counts each priority and group: evidence the
        calibrated decision reads for those labels."""
        texts, categories, weights, labels = [], [], [], []
        for text, label, human in entries:
            texts.append(text)
            categories.append(label.category if isinstance(label, Labels) else label)
            if isinstance(label, Labels):
                labels.append(label)
            weights.append(self._human_weight if human else 1.0)
        complete = labels if len(labels) == len(texts) else None
        head = LexicalHead.fit(texts, categories, weights, complete) if len(texts) >= self._head_min_entries else None
        with self._lock:
            self._heads[tenant] = head
        return head

    def _refit_from_memory(self, tenant: str) -> None:
        assert self._memory is not None
        started = time.perf_counter()
        try:
            entries = self._memory.entries(tenant)
            head = self.fit_head(tenant, ((e.text, e.labels, e.label_source is LabelSource.HUMAN) for e in entries))
            log.info(
                "lexical head fitted",
                extra={
                    "tenant": tenant,
                    "entries": head.size if head else 0,
                    "seconds": round(time.perf_counter() - started, 2),
                },
            )
        except Exception:  # the head is an extra: classification goes on without it
            log.warning("lexical head not fitted", extra={"tenant": tenant}, exc_info=True)
            with self._lock:
                self._heads.setdefault(tenant, None)
        finally:
            with self._lock:
                self._refitting.discard(tenant)

    def _head_for(self, tenant: str) -> LexicalHead | None:
        """The tenant's current head; a stale or missing one is refitted in the background."""
        with self._lock:
            head = self._heads.get(tenant)
            stale = tenant not in self._heads or (
                head is not None and time.monotonic() - head.fitted_at > self._head_refresh_seconds
            )
            if self._memory is not None and stale and tenant not in self._refitting:
                self._refitting.add(tenant)
                threading.Thread(
                    target=self._refit_from_memory, args=(tenant,), name=f"head-{tenant}", daemon=True
                ).start()
            return head

    # ------------------------------------------------------------------ classify

    def estimate(self, request: ClassificationRequest, *, balanced: bool = True) -> Estimate:
        """What the evidence says about each label of the ticket.

        ``balanced``: weigh each neighbour's category vote by n / (K n_c) (the memory's counts when
        the head was fitted) and read the class-balanced head, so rare categories are not
        outvoted by frequent ones: the classifier's own answer. Unbalanced, the blend estimates
        the posterior as the memory is: what the calibrated decision reads.
        """
        taxonomy = request.taxonomy
        head = self._head_for(request.tenant)
        class_weight = head.class_weights(taxonomy.category_names) if head and balanced else None
        names = list(taxonomy.category_names)
        category_vectors = self._prototypes_for(taxonomy)
        query = np.asarray(request.embedding)

        # What the taxonomy alone says: half the closest phrase, half the category's centre.
        description_scores = np.array(
            [0.5 * float(np.max(v @ query)) + 0.5 * float(np.mean(v @ query)) for v in category_vectors]
        )
        from_taxonomy = _softmax(description_scores, self._temperature)

        neighbours = list(request.neighbours) or list(request.examples)
        votes = np.zeros(len(names))
        priority_votes: dict[str, float] = defaultdict(float)
        group_votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for neighbour in neighbours:
            if neighbour.labels.category not in names:
                continue  # a label from an older taxonomy teaches nothing
            weight = vote_weight(neighbour, exponent=self._exponent, human_weight=self._human_weight)
            index = names.index(neighbour.labels.category)
            votes[index] += weight * (class_weight[index] if class_weight is not None else 1.0)
            priority_votes[neighbour.labels.priority] += weight
            group_votes[neighbour.labels.category][neighbour.labels.assignment_group] += weight
        evidence = float(votes.sum())
        from_neighbours = votes / evidence if evidence > 0 else np.zeros(len(names))

        from_head = head.probabilities(request.text, names, self._head_temperature, balanced=balanced) if head else None
        if from_head is not None and from_head.sum() > 0:
            share = self._head_share if evidence > 0 else 1.0
            from_memory = (1.0 - share) * from_neighbours + share * from_head
            evidence += 1.0  # a fitted head counts as one close, certain neighbour
        else:
            from_memory = from_neighbours
        blend = evidence / (evidence + self._prior_strength)
        # Priority descriptions embedded like categories proved noise (a cracked laptop came out
        # Critical): the neighbours' vote decides, with the taxonomy's default as a prior.
        priority_scores = {name: priority_votes.get(name, 0.0) for name in taxonomy.priority_names}
        priority_scores[taxonomy.default_priority] += self._prior_strength
        return Estimate(
            names=names,
            probabilities=blend * from_memory + (1.0 - blend) * from_taxonomy,
            description_scores=description_scores,
            from_neighbours=from_neighbours,
            from_head=from_head,
            blend=blend,
            neighbours=neighbours,
            priority_scores=priority_scores,
            group_votes={c: dict(v) for c, v in group_votes.items()},
            from_taxonomy=from_taxonomy,
            head_counts=head.counts if head else None,
            head_value_counts=head.value_counts if head else None,
        )

    def evidence(self, request: ClassificationRequest) -> dict[str, LabelEvidence]:
        """Per label, the evidence the calibrated decision reads: the posterior blend (not
        class-balanced) with its parts for the category; the neighbours' vote for the priority,
        and for the assignment group within the proposed category."""
        taxonomy = request.taxonomy
        estimate = self.estimate(request, balanced=False)
        names = estimate.names
        counts = estimate.head_counts or Counter()
        value_counts = estimate.head_value_counts or {}
        category = LabelEvidence(
            blend=dict(zip(names, map(float, estimate.probabilities), strict=True)),
            head=dict(zip(names, map(float, estimate.from_head), strict=True))
            if estimate.from_head is not None
            else None,
            taxonomy=dict(zip(names, map(float, estimate.from_taxonomy), strict=True))
            if estimate.from_taxonomy is not None
            else None,
            memory_size=sum(counts.values()),
            value_counts=dict(counts),
        )
        priority_total = sum(estimate.priority_scores.values())
        priority = LabelEvidence(
            blend={name: score / priority_total for name, score in estimate.priority_scores.items()},
            memory_size=sum(counts.values()),
            value_counts=dict(value_counts.get("priority", {})),
        )
        proposed = category.proposed
        groups = {
            g: w for g, w in estimate.group_votes.get(proposed, {}).items() if g in taxonomy.assignment_group_names
        }
        default_group = taxonomy.default_group_for(proposed)
        groups[default_group] = groups.get(default_group, 0.0) + self._prior_strength
        group_total = sum(groups.values())
        group = LabelEvidence(
            blend={g: w / group_total for g, w in groups.items()},
            memory_size=sum(counts.values()),
            value_counts=dict(value_counts.get("assignment_group", {})),
        )
        return {"category": category, "priority": priority, "assignment_group": group}

    def classify(self, request: ClassificationRequest) -> Classification:
        taxonomy = request.taxonomy
        estimate = self.estimate(request)
        best = int(np.argmax(estimate.probabilities))
        category = estimate.names[best]
        priority = max(estimate.priority_scores, key=estimate.priority_scores.__getitem__)
        groups = {
            g: w for g, w in estimate.group_votes.get(category, {}).items() if g in taxonomy.assignment_group_names
        }
        assignment_group = max(groups, key=groups.__getitem__) if groups else taxonomy.default_group_for(category)
        return Classification(
            labels=Labels(category=category, priority=priority, assignment_group=assignment_group),
            confidence=round(float(estimate.probabilities[best]), 4),
            rationale=self._rationale(
                category,
                estimate.description_scores[best],
                estimate.neighbours,
                estimate.from_neighbours[best],
                estimate.from_head[best] if estimate.from_head is not None else None,
                estimate.blend,
            ),
            path=AnswerPath.CLASSIFIER,
            classifier=NAME,
        )

    def agreement(self, request: ClassificationRequest, labels: Labels) -> float:
        """How far this classifier's evidence backs another classifier's labels, in [0, 1]: its
        probability of their category, scaled by how its priority vote rates their priority
        against its own choice. An LLM's labels are trusted for write-back only this far."""
        estimate = self.estimate(request)
        if labels.category not in estimate.names:
            return 0.0
        category = float(estimate.probabilities[estimate.names.index(labels.category)])
        best_priority = max(estimate.priority_scores.values())
        priority = estimate.priority_scores.get(labels.priority, 0.0) / best_priority if best_priority > 0 else 0.0
        return round(category * priority, 4)

    @staticmethod
    def _rationale(
        category: str,
        description_score: float,
        neighbours: Sequence[Neighbour],
        neighbour_share: float,
        head_probability: float | None,
        blend: float,
    ) -> str:
        parts = [f"Closest to the {category} description (similarity {description_score:.2f})"]
        agreeing = [n for n in neighbours if n.labels.category == category]
        if neighbours:
            text = (
                f"{len(agreeing)} of {len(neighbours)} similar labelled tickets agree "
                f"({neighbour_share:.0%} of the weighted vote"
            )
            if agreeing:
                best = max(agreeing, key=lambda n: n.similarity)
                text += f"; closest {best.ticket_id} at {best.similarity:.2f}"
            parts.append(text + ")")
        else:
            parts.append("no similar labelled tickets yet")
        if head_probability is not None:
            parts.append(f"keyword model {head_probability:.0%}")
        parts.append(f"memory weighs {blend:.0%} of the decision")
        return "; ".join(parts) + "."
