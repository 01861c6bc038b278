"""The calibrations' contract, run against the in-memory fake the unit tests use and against
FirestoreCalibrations on the real Firestore emulator: a calibration round-trips; an outcome is
recorded once per ticket, label and judge; the measured counts add up; a bar that no longer
keeps the target tightens (and says when), and a later calibration keeps the measured counts."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from google.cloud import firestore

from tests.fakes import InMemoryCalibrations
from triage.adapters.firestore_calibration import COUNTER_SHARDS, FirestoreCalibrations
from triage.decision import Calibration, LabelCalibration

MODEL = {"intercept": 0.5, "features": ["vote_share"], "mean": [0.0], "scale": [1.0], "coef": [2.0]}
# 130 right answers at 0.99: Wilson lower bound 0.971, just above a 0.97 target.
BAR = {"threshold": 0.9, "source": "own", "answered": 130, "correct": 130, "record": [[0.99, 1]] * 130}
VALUE = "Network & Connectivity"  # a value with spaces and '&': a map key, not a field path


@pytest.fixture(params=["in-memory fake", "Firestore emulator"])
def calibrations(request) -> FirestoreCalibrations | InMemoryCalibrations:
    if request.param == "in-memory fake":
        return InMemoryCalibrations()
    emulator_env = request.getfixturevalue("emulator_env")
    client = firestore.Client(project=emulator_env.config.project)
    return FirestoreCalibrations(client, f"calibration-{uuid.uuid4().hex[:8]}", cache_seconds=0)


def fitted(tenant: str = "acme") -> Calibration:
    return Calibration(
        tenant=tenant,
        target=0.97,
        labels={"category": LabelCalibration(MODEL, {VALUE: dict(BAR), "Email": {"threshold": None}})},
        fitted_on=500,
        fitted_at="2026-11-30T10:00:00+00:00",
        source="history.csv",
    )


def without_records(calibration: Calibration) -> Calibration:
    labels = {
        name: LabelCalibration(
            label.model, {v: {k: x for k, x in bar.items() if k != "record"} for v, bar in label.thresholds.items()}
        )
        for name, label in calibration.labels.items()
    }
    return dataclasses.replace(calibration, labels=labels)


def record(store, ticket_id: str, correct: bool, source: str = "audit", label: str = "category", p: float = 0.995):
    return store.record(
        tenant="acme", ticket_id=ticket_id, label=label, value=VALUE, probability=p, correct=correct, source=source
    )


def test_a_calibration_round_trips_and_an_unknown_tenant_has_none(calibrations):
    assert calibrations.get("acme") is None
    calibrations.save(fitted())
    # The decision comes back whole; the records its bars were fitted on stay apart (the live check reads them).
    assert calibrations.get("acme") == without_records(fitted())
    assert calibrations.get("other") is None


def test_an_outcome_is_recorded_once_per_ticket_label_and_judge(calibrations):
    calibrations.save(fitted())
    assert record(calibrations, "t1", True) == {"tightened": None}
    assert record(calibrations, "t1", False) is None  # the audit's verdict again: a redelivery
    assert record(calibrations, "t1", True, source="confirmation") == {"tightened": None}  # another judge
    assert record(calibrations, "t1", True, source="correction") is None  # the reviewer spoke already
    assert record(calibrations, "t1", True, label="priority") == {"tightened": None}
    assert calibrations.measured("acme") == {
        "category": {VALUE: {"answered": 2, "correct": 2}},
        "priority": {VALUE: {"answered": 1, "correct": 1}},
    }
    assert len(calibrations.outcomes("acme", "category")) == 2
    assert len(calibrations.outcomes("acme", "category", VALUE)) == 2
    assert calibrations.outcomes("acme", "category", "Email") == []


def test_the_outcomes_at_or_above_a_probability_are_read_alone(calibrations):
    for ticket, p in (("low", 0.5), ("bar", 0.9), ("high", 0.99)):
        record(calibrations, ticket, True, p=p)
    found = calibrations.outcomes("acme", "category", VALUE, at_least=0.9)
    assert sorted(o["ticket_id"] for o in found) == ["bar", "high"]
    assert len(calibrations.outcomes("acme", "category", VALUE)) == 3


def test_outcomes_are_measured_before_any_calibration(calibrations):
    assert record(calibrations, "t1", False) == {"tightened": None}
    assert calibrations.get("acme") is None
    assert calibrations.measured("acme") == {"category": {VALUE: {"answered": 1, "correct": 0}}}


def test_a_wrong_answer_that_breaks_the_target_tightens_the_bar(calibrations):
    calibrations.save(fitted())
    result = record(calibrations, "t1", False, p=0.995)
    tightened = result["tightened"]
    # 130/131 right: the lower bound falls below 0.97, and no higher bar holds on this record.
    assert tightened is not None and tightened["threshold"] is None
    bar = calibrations.get("acme").labels["category"].thresholds[VALUE]
    assert bar["threshold"] is None and bar["previous"] == 0.9 and bar["tightened_at"]
    assert calibrations.get("acme").labels["category"].thresholds["Email"] == {"threshold": None}
    # Later outcomes never loosen it.
    assert record(calibrations, "t2", True) == {"tightened": None}
    assert calibrations.get("acme").labels["category"].bar(VALUE) is None


def test_a_wrong_answer_below_a_bar_that_still_holds_changes_nothing(calibrations):
    calibrations.save(fitted())
    for index in range(3):
        assert record(calibrations, f"ok{index}", True)["tightened"] is None
    assert calibrations.get("acme").labels["category"].bar(VALUE) == 0.9


def test_a_new_calibration_keeps_the_measured_counts(calibrations):
    calibrations.save(fitted())
    record(calibrations, "t1", True)
    calibrations.save(fitted())
    assert calibrations.measured("acme")["category"][VALUE] == {"answered": 1, "correct": 1}
    assert calibrations.get("acme") == without_records(fitted())


def test_a_calibration_with_many_full_records_is_stored(calibrations):
    # 40 values with the 2,000-pair cap each: far more than one Firestore document may hold.
    full = {"threshold": 0.9, "source": "own", "record": [[0.99 - i * 1e-5, 1] for i in range(2000)]}
    many = Calibration(
        tenant="acme",
        target=0.97,
        labels={"assignment_group": LabelCalibration(MODEL, {f"Group {i}": dict(full) for i in range(40)})},
        fitted_at="2026-11-30T11:00:00+00:00",
    )
    calibrations.save(many)
    assert calibrations.get("acme") == without_records(many)
    # The live check reads the record: one wrong answer among 2,001 keeps the bar.
    result = calibrations.record(
        tenant="acme", ticket_id="t1", label="assignment_group", value="Group 7", probability=0.95, correct=False,
        source="audit",
    )  # fmt: skip
    assert result == {"tightened": None}
    assert calibrations.get("acme").labels["assignment_group"].bar("Group 7") == 0.9


@pytest.fixture
def firestore_calibrations(emulator_env) -> tuple[FirestoreCalibrations, firestore.CollectionReference]:
    client = firestore.Client(project=emulator_env.config.project)
    name = f"calibration-{uuid.uuid4().hex[:8]}"
    return FirestoreCalibrations(client, name, cache_seconds=0), client.collection(name)


def test_outcomes_count_on_shards_never_on_the_calibration_document(firestore_calibrations):
    """The calibration document takes about one write a second: outcomes must not queue on it."""
    calibrations, collection = firestore_calibrations
    calibrations.save(fitted())
    before = next(iter(collection.stream())).update_time
    for index in range(40):  # all right: no bar tightens (a tightening does write the calibration)
        record(calibrations, f"t{index}", True)
    tenant_document = next(iter(collection.stream()))
    assert tenant_document.update_time == before
    shards = list(tenant_document.reference.collection("measured").stream())
    assert 1 < len(shards) <= COUNTER_SHARDS
    assert calibrations.measured("acme") == {"category": {VALUE: {"answered": 40, "correct": 40}}}


def test_counts_an_earlier_version_kept_on_the_calibration_document_still_add_up(firestore_calibrations):
    calibrations, collection = firestore_calibrations
    calibrations.save(fitted())
    tenant_document = next(iter(collection.stream())).reference
    tenant_document.set({"measured": {"category": {VALUE: {"answered": 5, "correct": 4}}}}, merge=True)
    record(calibrations, "t1", True)
    assert calibrations.measured("acme") == {"category": {VALUE: {"answered": 6, "correct": 5}}}


def test_only_a_wrong_answer_re_checks_the_bar(calibrations):
    """A right answer cannot lower a bound that held, so it checks (and reads) nothing. Shown on a
    bar that no longer holds on its own record: right answers leave it, the next wrong one moves it."""
    calibration = fitted()
    failing = {**BAR, "answered": 140, "correct": 130, "record": [[0.99, 1]] * 130 + [[0.99, 0]] * 10}
    labels = {"category": LabelCalibration(MODEL, {VALUE: failing})}
    calibrations.save(dataclasses.replace(calibration, labels=labels))
    for index in range(3):
        assert record(calibrations, f"ok{index}", True) == {"tightened": None}
    assert calibrations.get("acme").labels["category"].bar(VALUE) == 0.9
    assert record(calibrations, "wrong", False)["tightened"] is not None
    assert calibrations.get("acme").labels["category"].bar(VALUE) is None
