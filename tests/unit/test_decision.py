"""The calibrated decision and its bars on hand-built evidence: the Wilson bounds, the bar rule
(own, pooled, none), the probability model, the features, the worker's verdict, the calibration
error and the live self-correction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from triage import decision
from triage import precision as p
from triage.decision import Calibration, LabelCalibration, LabelEvidence
from triage.offline.calibration import LabelStream, fit_label, fit_logistic


def test_wilson_bounds_and_minimum_evidence():
    assert p.wilson_lower(0, 0) == 0.0 and p.wilson_upper(0, 0) == 1.0
    assert abs(p.wilson_lower(124, 124) - 124 / (124 + 1.96**2)) < 1e-12  # all right: n / (n + z^2)
    assert p.wilson_lower(125, 125) >= 0.97 > p.wilson_lower(124, 124)
    assert p.minimum_evidence(0.97) == 125 and p.minimum_evidence(0.95) == 73
    assert p.wilson_lower(90, 100) < 0.9 < p.wilson_upper(90, 100)


def test_threshold_is_the_lowest_bar_with_a_wilson_bound_at_target():
    # 200 right answers at p = 0.99, then one wrong at 0.95, then 100 right at 0.9, 30 wrong at 0.5
    ps = [0.99] * 200 + [0.95] + [0.9] * 100 + [0.5] * 30
    outcomes = [1] * 200 + [0] + [1] * 100 + [0] * 30
    bar = p.threshold_for(ps, outcomes, target=0.97)
    assert bar["threshold"] == 0.9 and bar["answered"] == 301 and bar["correct"] == 300
    assert p.threshold_for(ps[:100], outcomes[:100], target=0.97)["threshold"] is None  # too few answers


def test_a_bar_never_splits_tied_probabilities():
    # 130 right and 5 wrong all at 0.9: the bar takes all 135 (lower bound < 0.97) or nothing
    assert p.threshold_for([0.9] * 135, [1] * 130 + [0] * 5, target=0.97)["threshold"] is None


def test_pooled_bar_needs_the_values_own_evidence():
    # value A: 300 right at 0.95; B: 40 at 0.95 with 2 wrong; C: 10 right at 0.95
    ps = [0.95] * 350
    groups = ["A"] * 300 + ["B"] * 40 + ["C"] * 10
    outcomes = [1] * 300 + [1] * 38 + [0] * 2 + [1] * 10
    bars = p.fit_thresholds(ps, outcomes, groups, target=0.97)
    assert bars["*"]["threshold"] == 0.95
    assert bars["A"]["threshold"] == 0.95 and bars["A"]["source"] == "own"
    assert bars["B"]["threshold"] is None and bars["B"]["source"] == "none"  # 95% on its own record
    assert bars["C"]["threshold"] is None  # 10 < ceil(1 / 0.03) = 34 answers of its own
    assert p.answers(0.96, "A", bars) and not p.answers(0.94, "A", bars) and not p.answers(0.99, "B", bars)
    assert not p.answers(0.99, "never seen", bars)


def test_a_value_may_answer_at_the_pooled_bar_with_enough_answers_of_its_own():
    # A certifies the pool at 0.9 on its own; D has 40 right answers at 0.92: too few for its own
    # Wilson bar (125), enough for the pooled one
    ps = [0.95] * 200 + [0.92] * 40
    bars = p.fit_thresholds(ps, [1] * 240, ["A"] * 200 + ["D"] * 40, target=0.97)
    assert bars["D"]["threshold"] == 0.92 and bars["D"]["source"] == "pooled" and bars["D"]["answered"] == 40


def test_logistic_model_is_plain_json_and_ranks():
    rows = [dict.fromkeys(decision.FEATURES, 0.0) | {"vote_share": v} for v in [0.1, 0.2, 0.3, 0.7, 0.8, 0.9] * 20]
    outcomes = [0, 0, 1, 0, 1, 1] * 20
    model = fit_logistic(rows, outcomes)
    model = json.loads(json.dumps(model))  # what calibrate stores
    low, high = decision.predict(model, rows[0]), decision.predict(model, rows[5])
    assert 0 < low < 0.5 < high < 1
    assert model["fitted_on"] == 120 and model["positives"] == 60
    assert fit_logistic(rows, [1] * len(rows)) is None  # nothing to learn
    assert decision.predict(None, rows[0]) == 0.0


def test_label_features_from_neighbours():
    neighbours = [(0.98, "VPN", False), (0.6, "VPN", False), (0.5, "Email", True)]
    blend, head = {"VPN": 0.8, "Email": 0.2}, {"VPN": 0.6, "Email": 0.4}
    f = decision.label_features(neighbours, "VPN", blend, head=head, memory_size=99, value_count=9, values=2)
    assert f["near_dup_agree"] == 1.0 and f["near_dup_conflict"] == 0.0
    assert f["top1_agrees"] == 1.0 and f["best_other"] == 0.5
    assert f["close_agree"] == 0.2 and f["close_disagree"] == 0.1
    assert abs(f["blend_margin"] - 0.6) < 1e-12 and f["head_top"] == 1.0 and f["head_missing"] == 0.0
    assert abs(f["log_share"] - math.log(10 / 101)) < 1e-12
    human = 0.5**4 * 2
    assert abs(f["vote_share"] - (0.98**4 + 0.6**4) / (0.98**4 + 0.6**4 + human)) < 1e-12
    empty = decision.label_features([], "VPN", {"VPN": 0.5, "Email": 0.5})
    assert empty["top1_sim"] == 0.0 and empty["vote_share"] == 0.0 and empty["head_missing"] == 1.0
    assert set(f) == set(decision.FEATURES)


def model_on(feature: str, weight: float, intercept: float = 0.0) -> dict:
    """A hand-built model: the probability rises with one feature only."""
    return {
        "features": list(decision.FEATURES),
        "mean": [0.0] * len(decision.FEATURES),
        "scale": [1.0] * len(decision.FEATURES),
        "coef": [weight if name == feature else 0.0 for name in decision.FEATURES],
        "intercept": intercept,
    }


def test_the_verdict_answers_only_when_every_calibrated_label_clears_its_own_bar():
    vote = model_on("vote_share", 10.0, -5.0)  # p = sigmoid(10 * vote_share - 5)
    calibration = Calibration(
        tenant="acme",
        target=0.97,
        labels={
            "category": LabelCalibration(
                vote, {"VPN": {"threshold": 0.9, "source": "own"}, "Email": {"threshold": None}}
            ),
            "priority": LabelCalibration(vote, {"High": {"threshold": 0.95, "source": "pooled"}}),
        },
    )
    same = [(0.95, {"category": "VPN", "priority": "High"}, False)] * 3
    evidence = {
        "category": LabelEvidence(blend={"VPN": 0.9, "Email": 0.1}),
        "priority": LabelEvidence(blend={"High": 0.7, "Low": 0.3}),
        "assignment_group": LabelEvidence(blend={"Network": 1.0}),  # not calibrated: not judged
    }
    verdict = decision.judge(same, evidence, calibration)
    assert set(verdict.labels) == {"category", "priority"}
    assert verdict.labels["category"].value == "VPN" and verdict.labels["category"].probability == pytest.approx(
        1 / (1 + math.exp(-5)), abs=1e-4
    )
    assert verdict.answered and "category VPN" in verdict.reason()
    # the priority's neighbours disagree: its probability falls under its bar, the LLM is asked
    split = [
        (0.95, {"category": "VPN", "priority": "High"}, False),
        (0.95, {"category": "VPN", "priority": "Low"}, True),
    ]
    verdict = decision.judge(split, evidence, calibration)
    assert verdict.labels["category"].answered and not verdict.labels["priority"].answered and not verdict.answered
    # a value without a bar never answers from memory
    email = {**evidence, "category": LabelEvidence(blend={"VPN": 0.1, "Email": 0.9})}
    assert not decision.judge(
        [(0.99, {"category": "Email", "priority": "High"}, False)] * 3, email, calibration
    ).answered
    # and a calibration round-trips through its stored form
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration


def test_fitted_bars_carry_the_record_they_were_fitted_on_highest_first_and_capped():
    generator = np.random.default_rng(0)
    count = 1200
    signal = generator.random(count)
    features = np.zeros((count, len(decision.FEATURES)))
    features[:, decision.FEATURES.index("vote_share")] = signal
    truth = ["A" if s > 0.1 else "B" for s in signal]  # right wherever the evidence is strong
    stream = LabelStream(proposed=["A"] * count, truth=truth, features=features)
    fitted = fit_label(stream, count, target=0.97, record_limit=500)
    bar = fitted.calibration.thresholds["A"]
    assert bar["threshold"] is not None and bar["source"] == "own"
    record = bar["record"]
    assert len(record) == 500 and [pair[0] for pair in record] == sorted((pair[0] for pair in record), reverse=True)
    assert all(round(pair[0], 4) == pair[0] and pair[1] in (0, 1) for pair in record)
    assert "record" not in fitted.calibration.thresholds["*"]
    # the bar keeps the target on the cross-fitted history it was fitted on
    above = fitted.correct[fitted.probabilities >= bar["threshold"]]
    assert p.wilson_lower(int(above.sum()), len(above)) >= 0.97
    json.dumps(fitted.calibration.thresholds)  # plain JSON: what Firestore stores


def test_expected_calibration_error():
    assert p.expected_calibration_error([0.95] * 20, [1] * 19 + [0]) < 1e-9
    assert abs(p.expected_calibration_error([0.9] * 10, [0] * 10) - 0.9) < 1e-12
    assert p.expected_calibration_error([], []) == 0.0


def test_live_check_tightens_on_a_breach_and_never_loosens():
    bar = {"threshold": 0.9, "source": "pooled"}
    record = [(0.95, 1)] * 40 + [(0.99, 1)] * 20
    assert p.live_check(bar, record, target=0.97)["changed"] is False
    audited = record + [(0.93, 0)] * 3  # three audited memory answers the classifier of record rejected
    tightened = p.live_check(bar, audited, target=0.97)
    assert tightened["changed"] and tightened["threshold"] == 0.95
    worse = audited + [(0.99, 0)] * 5
    assert p.live_check(bar, worse, target=0.97)["threshold"] is None  # suspended: LLM until a refit
    # a clean record keeps the bar where it is: live_check never lowers it
    assert p.live_check({"threshold": 0.97, "source": "own"}, [(0.99, 1)] * 200, target=0.97)["threshold"] == 0.97
    # a value without a bar stays without one
    assert p.live_check({"threshold": None, "source": "none"}, [(0.99, 1)] * 200, target=0.97)["threshold"] is None
