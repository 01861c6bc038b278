from __future__ import annotations

import pytest

from triage.domain import Labels, LabelSource, Neighbour
from triage.policy import MemoryPolicy, decide, select_examples

POLICY = MemoryPolicy()


def n(
    ticket_id: str, similarity: float, category: str = "Software", source=LabelSource.MODEL, text: str = ""
) -> Neighbour:
    return Neighbour(
        ticket_id=ticket_id,
        similarity=similarity,
        labels=Labels(category, "Medium", "Group"),
        label_source=source,
        text=text or f"text of {ticket_id}",
    )


def test_an_empty_memory_never_answers():
    decision = decide([], POLICY)
    assert not decision.hit
    assert "nothing" in decision.reason


def test_a_near_duplicate_answers_alone():
    decision = decide([n("a", 0.98), n("b", 0.30, "Access")], POLICY)
    assert decision.hit
    assert decision.matched.ticket_id == "a"
    assert decision.labels.category == "Software"
    assert decision.confidence == pytest.approx(0.98)


def test_one_neighbour_at_a_fixed_threshold_is_not_enough():
    # "I cannot log in to the VPN" vs "... to Salesforce" sit at 0.62 under MiniLM.
    assert not decide([n("a", 0.62, "Access")], POLICY).hit
    assert not decide([n("a", 0.85)], POLICY).hit


def test_a_human_verified_neighbour_needs_less_similarity():
    assert not decide([n("a", 0.95)], POLICY).hit
    decision = decide([n("a", 0.92, "Access", LabelSource.HUMAN)], POLICY)
    assert decision.hit and decision.labels.category == "Access"


def test_near_duplicates_that_disagree_fall_back_to_the_neighbourhood():
    decision = decide([n("a", 0.99, "Software"), n("b", 0.98, "Access")], POLICY)
    assert not decision.hit


def test_a_human_near_duplicate_outranks_a_model_one():
    decision = decide([n("a", 0.99, "Software"), n("b", 0.93, "Access", LabelSource.HUMAN)], POLICY)
    assert decision.hit
    assert decision.labels.category == "Access"
    assert decision.matched.ticket_id == "b"


def test_a_close_agreeing_neighbourhood_answers():
    neighbours = [n(str(i), s) for i, s in enumerate([0.80, 0.75, 0.70, 0.66, 0.61, 0.50, 0.46, 0.30])]
    decision = decide(neighbours, POLICY)
    assert decision.hit
    assert "7 of 7 close neighbours agree on Software" in decision.reason
    assert decision.matched.ticket_id == "0"


def test_a_few_close_dissenters_are_outweighed_by_closer_agreement():
    agreeing = [n(str(i), s) for i, s in enumerate([0.80, 0.78, 0.75, 0.72, 0.70, 0.68])]
    assert decide([*agreeing, n("x", 0.46, "Access")], POLICY).hit  # 0.46**4 is little weight
    assert not decide([*agreeing, n("x", 0.79, "Access")], POLICY).hit


@pytest.mark.parametrize(
    "neighbours",
    [
        # five close voters: one short of the six a vote needs
        [n(str(i), 0.8) for i in range(5)] + [n("far", 0.44)],
        # six voters, split down the middle
        [n(str(i), 0.7, "Software" if i % 2 else "Access") for i in range(6)],
    ],
)
def test_a_weak_or_split_neighbourhood_does_not_answer(neighbours):
    assert not decide(neighbours, POLICY).hit


def test_only_the_nearest_neighbours_vote():
    nearest = [n(f"s{i}", 0.80) for i in range(10)]
    beyond = [n(f"a{i}", 0.79, "Access") for i in range(10)]
    assert decide(nearest + beyond, POLICY).labels.category == "Software"
    assert not decide(nearest + beyond, MemoryPolicy(agreement_neighbours=20)).hit


def test_human_labels_weigh_more_in_a_vote():
    policy = MemoryPolicy(agreement_neighbours=3, agreement_min_voters=3, agreement_share=0.6)
    neighbours = [n("a", 0.8, "Access", LabelSource.HUMAN), n("b", 0.8, "Software"), n("c", 0.8, "Access")]
    decision = decide(neighbours, policy)
    assert decision.hit and decision.labels.category == "Access"
    assert decision.matched.ticket_id == "a"  # the human's labels, not just the category
    split = [n("a", 0.8, "Access"), n("b", 0.8, "Software"), n("c", 0.8, "Software", LabelSource.HUMAN)]
    assert decide(split, policy).labels.category == "Software"
    unweighted = MemoryPolicy(agreement_neighbours=3, agreement_min_voters=3, agreement_share=0.6, human_weight=1.0)
    tie = [n("a", 0.8, "Access", LabelSource.HUMAN), n("b", 0.8, "Software"), n("c", 0.8, "Software")]
    assert decide(tie, unweighted).labels.category == "Software"
    assert decide(tie, policy).hit is False  # 2 (human) against 2 (model): no majority


@pytest.mark.parametrize(
    "settings",
    [
        {"near_duplicate_similarity": 1.5},
        {"agreement_share": 0.5},
        {"agreement_min_voters": 11},
        {"agreement_min_voters": 0},
        {"similarity_exponent": 0},
        {"human_weight": 0.5},
    ],
)
def test_policy_rejects_nonsense_settings(settings):
    with pytest.raises(ValueError):
        MemoryPolicy(**settings)


def test_examples_put_humans_first_then_the_closest():
    neighbours = [n("model-close", 0.9), n("human-far", 0.5, source=LabelSource.HUMAN), n("model-far", 0.6)]
    chosen = select_examples(neighbours, max_examples=8, max_chars=10_000)
    assert [e.ticket_id for e in chosen] == ["human-far", "model-close", "model-far"]


def test_examples_skip_repeats_and_respect_the_budgets():
    neighbours = [
        n("a", 0.9, text="VPN  is down"),
        n("b", 0.8, text="vpn is DOWN"),
        n("c", 0.7, text="x" * 50),
        n("d", 0.6, text="printer jam"),
    ]
    assert [e.ticket_id for e in select_examples(neighbours, max_examples=8, max_chars=10_000)] == ["a", "c", "d"]
    assert [e.ticket_id for e in select_examples(neighbours, max_examples=8, max_chars=30)] == ["a", "d"]
    assert [e.ticket_id for e in select_examples(neighbours, max_examples=1, max_chars=10_000)] == ["a"]
