"""The real embedding model, the local classifier on it, and the memory policy on real similarities."""

from __future__ import annotations

import math

import pytest

from triage.adapters.local_classifier import LocalEmbeddingClassifier
from triage.domain import Labels, LabelSource, Neighbour
from triage.policy import MemoryPolicy, decide
from triage.ports import ClassificationRequest


def cosine(embedder, a: str, b: str) -> float:
    first, second = embedder.embed([a, b])
    return sum(x * y for x, y in zip(first, second, strict=True))


def test_embeddings_are_unit_length_384_floats_and_deterministic(embedder):
    first, again = embedder.embed(["VPN drops"]) + embedder.embed(["VPN drops"])
    assert len(first) == 384
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-5)
    assert first == pytest.approx(again, abs=1e-6)


def test_the_product_descriptions_pair_is_less_similar_than_unrelated_logins(embedder):
    """The fact the default policy is built around (see the README)."""
    paraphrase = cosine(
        embedder, "Jenkins deployment timeout connecting to AWS", "AWS prod connection drops during CI/CD build"
    )
    unrelated = cosine(embedder, "I cannot log in to the VPN", "I cannot log in to Salesforce")
    close = cosine(
        embedder, "Jenkins deployment timeout connecting to AWS", "Jenkins deployment timed out while connecting to AWS"
    )
    assert paraphrase == pytest.approx(0.55, abs=0.02)
    assert unrelated == pytest.approx(0.62, abs=0.02)
    assert close > 0.95


def test_a_threshold_low_enough_for_that_pair_also_answers_the_wrong_ticket(embedder):
    def one_neighbour_decision(policy, stored, new, category):
        neighbour = Neighbour("old", cosine(embedder, stored, new), Labels(category, "Medium", "G"), LabelSource.MODEL)
        return decide([neighbour], policy)

    default, lowered = MemoryPolicy(), MemoryPolicy(near_duplicate_similarity=0.5)
    jenkins = (
        "Jenkins deployment timeout connecting to AWS",
        "AWS prod connection drops during CI/CD build",
        "Software",
    )
    logins = ("I cannot log in to the VPN", "I cannot log in to Salesforce", "Network")
    assert not one_neighbour_decision(default, *jenkins).hit
    assert not one_neighbour_decision(default, *logins).hit
    assert one_neighbour_decision(lowered, *jenkins).hit
    # ...and the same setting hands a Salesforce login problem the VPN ticket's Network label.
    assert one_neighbour_decision(lowered, *logins).hit


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("My laptop screen is cracked and flickers", "Hardware"),
        ("I forgot my password and my account is locked", "Access"),
        ("Wi-Fi keeps dropping in the office", "Network"),
        ("Outlook does not sync my mailbox", "Email & Collaboration"),
        ("Excel crashes when I open a macro workbook", "Software"),
        ("Got an email asking me to confirm my bank password", "Security"),
        ("Please order 5 new headsets for the support team", "Purchase"),
        ("Production database disk is almost full", "Infrastructure"),
    ],
)
def test_the_local_classifier_knows_the_default_taxonomy_with_an_empty_memory(embedder, taxonomy, text, category):
    answer = LocalEmbeddingClassifier(embedder).classify(
        ClassificationRequest(text, embedder.embed([text])[0], [], taxonomy)
    )
    assert answer.labels.category == category
    assert answer.labels.priority == taxonomy.default_priority
    assert answer.labels.assignment_group == taxonomy.default_group_for(category)


def test_the_local_classifier_learns_from_labelled_neighbours(embedder, taxonomy):
    text = "Badge reader at the loading dock rejects my card"
    classifier = LocalEmbeddingClassifier(embedder)
    before = classifier.classify(ClassificationRequest(text, embedder.embed([text])[0], [], taxonomy))
    past = [
        "Badge reader at the main entrance rejects my card",
        "My access badge stopped opening the loading dock door",
    ]
    facilities = Labels("General", "Low", "Service Desk")
    neighbours = [
        Neighbour(f"past-{i}", cosine(embedder, text, p), facilities, LabelSource.HUMAN, p) for i, p in enumerate(past)
    ]
    after = classifier.classify(ClassificationRequest(text, embedder.embed([text])[0], neighbours, taxonomy))
    assert before.labels != facilities
    assert after.labels == facilities
    assert after.confidence > 0.5
