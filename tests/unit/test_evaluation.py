from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fakes import HashingEmbedder
from triage.adapters.local_classifier import LocalEmbeddingClassifier
from triage.domain import Labels
from triage.offline import baselines, calibration, evaluation, feedback_loop
from triage.offline.datasets import LabelledRow, taxonomy_from_labels
from triage.policy import MemoryPolicy


def test_nearest_earlier_matches_brute_force():
    generator = np.random.default_rng(3)
    vectors = generator.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    indices, similarities = evaluation.nearest_earlier(vectors, 5, block=64)
    for i in (0, 1, 4, 63, 64, 65, 299):
        expected = sorted(range(i), key=lambda j: -float(vectors[i] @ vectors[j]))[:5]
        assert [j for j in indices[i] if j >= 0] == expected
        assert np.allclose(similarities[i][: len(expected)], [vectors[i] @ vectors[j] for j in expected], atol=1e-5)


def labelled(vectors: np.ndarray, labels: list[Labels]) -> evaluation.Prepared:
    rows = [LabelledRow(i, f"r{i}", f"t{i}", label) for i, label in enumerate(labels)]
    indices, similarities = evaluation.nearest_earlier(vectors, 10)
    neighbours = [
        [evaluation._neighbour(rows, j, s) for j, s in zip(indices[i], similarities[i], strict=True) if j >= 0]
        for i in range(len(rows))
    ]
    return evaluation.Prepared(rows, vectors, neighbours)


def test_the_baselines_count_answers_and_their_precision_label_by_label():
    # Three identical tickets then a fourth identical one with another category: the memory answers
    # tickets 2, 3 and 4 (near-duplicates), and is wrong on the fourth. The third has another
    # priority: the fixed policy copies the matched ticket's, unchecked.
    vectors = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (4, 1))
    labels = [Labels("A", "Low", "-"), Labels("A", "Low", "-"), Labels("A", "High", "-"), Labels("B", "Low", "-")]
    prepared = labelled(vectors, labels)
    category = baselines.fixed_policy(prepared, MemoryPolicy(), ["category"])
    figures = category.figures()
    assert (figures.tickets, figures.answered, figures.correct) == (4, 3, 2)
    assert figures.answered_share == pytest.approx(0.75) and figures.precision == pytest.approx(2 / 3)
    assert 0 < figures.lower < 2 / 3
    tail = category.figures(3)
    assert (tail.tickets, tail.answered, tail.correct) == (1, 1, 0)
    both = baselines.fixed_policy(prepared, MemoryPolicy(), ["category", "priority"])
    assert both.figures().correct == 1  # only the second ticket has both labels right
    assert both.label_precision() == pytest.approx({"category": 2 / 3, "priority": 2 / 3})
    fixed = baselines.nearest_neighbour(prepared, 0.8, ["category"]).figures()
    assert (fixed.answered, fixed.correct) == (3, 2)
    nothing = baselines.nearest_neighbour(prepared, 1.5, ["category"])
    assert nothing.figures().precision is None and nothing.label_precision() == {"category": None}


def test_a_system_row_keeps_the_figures_evaluate_json_promises():
    answers = evaluation.StreamAnswers(np.array([False, True, True, True]), {"category": np.array([1, 1, 0, 1], bool)})
    row = evaluation.system_figures(answers, evaluation.ClassifierFigures(10, 0.8, 0.7), cut=2)
    assert row["llm_calls_avoided"] == 0.75 and row["memory_precision"] == pytest.approx(0.6667, abs=1e-4)
    assert row["macro_f1"] == 0.7 and row["tail"] == {"tickets": 2, "llm_calls_avoided": 1.0, "memory_precision": 0.5}
    classifier_only = evaluation.system_figures(None, evaluation.ClassifierFigures(10, 0.8, 0.7), cut=2)
    assert classifier_only["llm_calls_avoided"] is None and classifier_only["accuracy"] == 0.8


WORDS = {
    "Network": "vpn wifi router dns proxy firewall latency packet",
    "Hardware": "laptop screen keyboard battery printer mouse dock charger",
    "Access": "password login account locked permission token reset sso",
}


def synthetic(count: int, seed: int = 0) -> tuple[list[LabelledRow], np.ndarray]:
    """Tickets whose words say their category, with one category in fifty wrong (noise to calibrate)."""
    generator = np.random.default_rng(seed)
    names = sorted(WORDS)
    rows = []
    for i in range(count):
        category = names[i % 3]
        words = generator.choice(WORDS[category].split(), size=4, replace=False)
        label = names[(i + 1) % 3] if generator.random() < 0.02 else category
        priority = "High" if "locked" in words or "vpn" in words else "Low"
        rows.append(LabelledRow(i, f"r{i}", " ".join(words), Labels(label, priority, "-")))
    embeddings = np.asarray(HashingEmbedder().embed([r.text for r in rows]), dtype=np.float32)
    return rows, embeddings


class RecordingClassifier(LocalEmbeddingClassifier):
    """The local classifier, noting what each lexical head was fitted on."""

    def __init__(self) -> None:
        super().__init__(HashingEmbedder())
        self.fitted_on: list[list[str]] = []

    def fit_head(self, tenant, entries):
        entries = list(entries)
        self.fitted_on.append([text for text, _, _ in entries])
        assert all(isinstance(labels, Labels) for _, labels, _ in entries)
        return super().fit_head(tenant, entries)


def test_the_replay_decides_each_ticket_only_with_what_came_before_it():
    rows, embeddings = synthetic(300)
    prepared = evaluation.prepare(rows, embeddings, neighbours=20, seed=0)
    classifier = RecordingClassifier()
    labels = ["category", "priority"]
    stream = calibration.stream_evidence(prepared, taxonomy_from_labels(rows), classifier, labels, refit=100)
    # the lexical head is refitted at tickets 100 and 200, each time on exactly the tickets before
    assert classifier.fitted_on == [[r.text for r in prepared.rows[:100]], [r.text for r in prepared.rows[:200]]]
    assert stream.evidence[150]["priority"].value_counts  # the head counts each label's values
    result = calibration.replay(stream, target=0.9, refit=100)
    assert not result.answered[:100].any() and not result.probability["category"][:100].any()
    assert result.answered[100:].any()
    answered = result.answered
    assert (result.all_correct[answered]).mean() >= 0.9
    # the outcomes of the last block change nothing in how it was decided
    truth = stream.labels["category"].truth
    flipped = dataclasses.replace(stream.labels["category"], truth=truth[:200] + ["Network"] * (len(truth) - 200))
    changed = calibration.replay(dataclasses.replace(stream, labels={**stream.labels, "category": flipped}), target=0.9)
    assert (changed.correct["category"][200:] != result.correct["category"][200:]).any()
    assert (changed.answered[200:] == answered[200:]).all()
    assert (changed.probability["category"][200:] == result.probability["category"][200:]).all()
    figures = calibration.label_figures(result, cut=240)
    assert set(figures) == {"category", "priority", "all"} and 0 <= figures["category"]["ece"] <= 1


def test_the_final_calibration_is_fitted_on_the_whole_history_with_its_records():
    rows, embeddings = synthetic(300)
    fitted = calibration.fit_calibration(
        rows,
        embeddings,
        taxonomy=taxonomy_from_labels(rows),
        classifier=LocalEmbeddingClassifier(HashingEmbedder()),
        labels=["category"],
        tenant="acme",
        target=0.9,
        neighbours=20,
    )
    assert fitted.tenant == "acme" and fitted.fitted_on == 300 and set(fitted.labels) == {"category"}
    bars = fitted.labels["category"].thresholds
    assert set(bars) == {"*", *WORDS} and all(len(bars[name]["record"]) > 0 for name in WORDS)
    assert sum(len(bars[name]["record"]) for name in WORDS) == 300
    table = calibration.bars(fitted)
    assert table["category"]["*"]["source"] == "all"
    for name in WORDS:
        row = table["category"][name]
        assert row["threshold"] is None or row["precision"] >= 0.9


def test_the_servicenow_baseline_answers_only_from_earlier_fits():
    rows, embeddings = synthetic(160)
    prepared = evaluation.prepare(rows, embeddings, neighbours=5, seed=0)
    bare, guarded = baselines.servicenow(prepared, ["category"], target=0.9, refit=80)
    assert not bare.answered[:80].any() and not guarded.answered[:80].any()
    assert guarded.answered.sum() <= bare.answered.sum()  # the Wilson guard only takes answers away
    assert bare.figures().answered > 0


def test_the_nightly_loop_refits_only_on_what_the_memory_holds_as_history():
    rows, embeddings = synthetic(400)
    prepared = evaluation.prepare(rows, embeddings, neighbours=20, seed=0)
    taxonomy = taxonomy_from_labels(rows)
    classifier = LocalEmbeddingClassifier(HashingEmbedder())
    stream = calibration.stream_evidence(prepared, taxonomy, classifier, ["category"], refit=100)

    def run(audit_rate: float) -> tuple[calibration.Replay, list[dict]]:
        return feedback_loop.loop(
            prepared, stream, taxonomy, classifier, ["category"], target=0.9, audit_rate=audit_rate, every=100,
            neighbours=20,
        )  # fmt: skip

    known, known_nights = run(1.0)
    assert [n["refit_at"] for n in known_nights] == [100, 200, 300]
    assert not known.answered[:100].any() and known.answered[100:].any()
    assert all(n["history"] == n["refit_at"] for n in known_nights)  # every outcome known: all of it
    assert known.all_correct[known.answered].mean() >= 0.9
    unaudited, nights = run(0.0)
    assert nights[0]["history"] == 100
    for night in nights:  # the memory's own answers are left out of the history, none audited
        assert night["memory_answers_before"] == int(unaudited.answered[: night["refit_at"]].sum())
        assert night["history"] == night["refit_at"] - night["memory_answers_before"]
        assert night["memory_answers_in_history"] == 0
    assert nights[-1]["memory_answers_before"] > 0
    _, half = run(0.5)
    assert 0 < half[-1]["memory_answers_in_history"] < half[-1]["memory_answers_before"]
    with pytest.raises(ValueError):
        run(1.5)


def test_the_hindsight_bar_is_the_lowest_one_that_keeps_the_target_without_splitting_ties():
    right = np.array([1, 1, 0, 1, 0], dtype=bool)
    result = calibration.Replay(
        answered=np.zeros(5, dtype=bool),
        probability={"category": np.array([0.9, 0.8, 0.8, 0.7, 0.6]), "priority": np.array([1.0, 1.0, 0.9, 0.9, 1.0])},
        label_answered={},
        correct={"category": right, "priority": np.ones(5, dtype=bool)},
        last=None,
    )
    loose = calibration.hindsight(result, 0.75, start=0)
    assert (loose["answered"], loose["correct"], loose["bar"]) == (4, 3, 0.7)
    assert loose["answered_share"] == 0.8 and loose["precision"] == 0.75
    tight = calibration.hindsight(result, 0.8, start=0)  # 2 of the 0.8s would do, but the bar takes both
    assert (tight["answered"], tight["bar"]) == (1, 0.9)
    assert calibration.hindsight(result, 0.8, start=1)["answered"] == 0  # before the first fit: not counted
