from __future__ import annotations

import time

from tests.fakes import HashingEmbedder
from triage.adapters.local_classifier import LocalEmbeddingClassifier
from triage.domain import AnswerPath, Labels, LabelSource, Neighbour
from triage.ports import ClassificationRequest


def request(classifier_embedder, taxonomy, text, examples=()):
    return ClassificationRequest(
        text=text, embedding=classifier_embedder.embed([text])[0], examples=list(examples), taxonomy=taxonomy
    )


def test_an_empty_memory_still_gets_a_real_prediction(taxonomy):
    embedder = HashingEmbedder()
    classifier = LocalEmbeddingClassifier(embedder)
    answer = classifier.classify(request(embedder, taxonomy, "printer jammed paper stuck on floor 3"))
    assert answer.labels.category == "Hardware"
    assert answer.labels.assignment_group == "End User Computing"
    assert 0 < answer.confidence < 1
    assert answer.path is AnswerPath.CLASSIFIER and answer.classifier == "local-embedding"
    assert "no similar labelled tickets" in answer.rationale


def test_labelled_neighbours_move_the_prediction_and_humans_count_more(taxonomy):
    embedder = HashingEmbedder()
    classifier = LocalEmbeddingClassifier(embedder)
    text = "printer jammed paper stuck on floor 3"
    facilities = Labels("General", "Low", "Service Desk")
    close = [Neighbour(f"n{i}", 0.8, facilities, LabelSource.MODEL, f"t{i}") for i in range(3)]
    answer = classifier.classify(request(embedder, taxonomy, text, close))
    assert answer.labels == facilities
    assert "3 of 3 similar labelled tickets agree" in answer.rationale
    split = [
        Neighbour("m", 0.7, Labels("Purchase", "Low", "Procurement"), LabelSource.MODEL, "m"),
        Neighbour("h", 0.7, facilities, LabelSource.HUMAN, "h"),
    ]
    assert classifier.classify(request(embedder, taxonomy, text, split)).labels.category == "General"


def test_labels_from_another_taxonomy_are_ignored(taxonomy):
    embedder = HashingEmbedder()
    classifier = LocalEmbeddingClassifier(embedder)
    stale = [Neighbour("n", 0.9, Labels("Retired", "Low", "Gone"), LabelSource.HUMAN, "x")]
    answer = classifier.classify(request(embedder, taxonomy, "printer jammed paper stuck", stale))
    assert answer.labels.category in taxonomy.category_names


def keyword_tickets(count: int) -> list[tuple[str, str, bool]]:
    # Words the hashing embedder spreads evenly; only a lexical model learns that "toner" means Hardware.
    return [
        (
            f"request {i} toner cartridge empty" if i % 2 else f"request {i} quota mailbox full",
            "Hardware" if i % 2 else "Email & Collaboration",
            False,
        )
        for i in range(count)
    ]


def test_a_lexical_head_learns_keywords_from_the_memory(taxonomy):
    embedder = HashingEmbedder()
    classifier = LocalEmbeddingClassifier(embedder, head_min_entries=20)
    assert classifier.fit_head("acme", keyword_tickets(10)) is None  # too few to fit
    assert classifier.fit_head("acme", keyword_tickets(40)) is not None
    text = "toner low again"
    answer = classifier.classify(ClassificationRequest(text, embedder.embed([text])[0], [], taxonomy, tenant="acme"))
    assert answer.labels.category == "Hardware"
    assert "keyword model" in answer.rationale
    other_tenant = classifier.classify(
        ClassificationRequest(text, embedder.embed([text])[0], [], taxonomy, tenant="globex")
    )
    assert "keyword model" not in other_tenant.rationale


def test_the_head_is_fitted_from_the_memory_in_the_background(taxonomy):
    from tests.fakes import InMemoryMemory
    from triage.domain import MemoryEntry

    embedder, memory = HashingEmbedder(), InMemoryMemory()
    for i, (text, category, _) in enumerate(keyword_tickets(40)):
        labels = Labels(category, "Medium", taxonomy.default_group_for(category))
        memory.remember(MemoryEntry(f"m{i}", "acme", embedder.embed([text])[0], text, labels, LabelSource.MODEL))
    classifier = LocalEmbeddingClassifier(embedder, memory=memory, head_min_entries=20)
    text = "toner low again"
    request = ClassificationRequest(text, embedder.embed([text])[0], [], taxonomy, tenant="acme")
    first = classifier.classify(request)
    assert "keyword model" not in first.rationale  # not fitted yet: classification does not wait
    deadline = time.monotonic() + 10
    while "keyword model" not in classifier.classify(request).rationale:
        assert time.monotonic() < deadline, "the head was never fitted"
        time.sleep(0.05)
    assert classifier.classify(request).labels.category == "Hardware"
