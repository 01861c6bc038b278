from __future__ import annotations

import numpy as np
import pytest

from triage.domain import Labels
from triage.offline import evaluation
from triage.offline.datasets import LabelledRow
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


def labelled(vectors: np.ndarray, categories: list[str]) -> evaluation.Prepared:
    rows = [LabelledRow(i, f"r{i}", f"t{i}", Labels(c, "-", "-")) for i, c in enumerate(categories)]
    indices, similarities = evaluation.nearest_earlier(vectors, 10)
    neighbours = [
        [evaluation._neighbour(rows, j, s) for j, s in zip(indices[i], similarities[i], strict=True) if j >= 0]
        for i in range(len(rows))
    ]
    return evaluation.Prepared(rows, vectors, neighbours)


def test_replay_counts_answers_and_their_precision():
    # Three identical tickets then a fourth identical one with another label: the memory answers
    # tickets 2, 3 and 4 (near-duplicates), and is wrong on the fourth.
    vectors = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (4, 1))
    prepared = labelled(vectors, ["A", "A", "A", "B"])
    figures = evaluation.replay(prepared, MemoryPolicy())
    assert (figures.tickets, figures.answered, figures.correct) == (4, 3, 2)
    assert figures.answered_share == pytest.approx(0.75) and figures.precision == pytest.approx(2 / 3)
    tail = evaluation.replay(prepared, MemoryPolicy(), start=3)
    assert (tail.tickets, tail.answered, tail.correct) == (1, 1, 0)
    fixed = evaluation.replay_fixed_threshold(prepared, 0.8)
    assert (fixed.answered, fixed.correct) == (3, 2)


def test_the_frontier_and_the_choice():
    def point(answered: int, correct: int) -> evaluation.CalibrationPoint:
        return evaluation.CalibrationPoint(
            MemoryPolicy(agreement_min_voters=1 + answered % 9), evaluation.MemoryFigures(100, answered, correct)
        )

    points = [point(10, 10), point(20, 19), point(30, 27), point(25, 20), point(40, 30)]
    curve = evaluation.frontier(points)
    assert [p.figures.answered for p in curve] == [10, 20, 30, 40]
    assert evaluation.choose(points, 0.9).figures.answered == 30
    assert evaluation.choose(points, 0.99).figures.answered == 10
    assert evaluation.choose(points, 1.01) is None


def test_the_calibration_grid_only_holds_valid_policies():
    grid = evaluation.calibration_grid(MemoryPolicy())
    assert len(grid) > 100
    assert all(p.agreement_min_voters <= p.agreement_neighbours for p in grid)
