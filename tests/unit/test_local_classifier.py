from __future__ import annotations

from tests.fakes import HashingEmbedder
from triage.adapters.local_classifier import LocalEmbeddingClassifier
from triage.domain import Labels, LabelSource, Neighbour, Path
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
    assert answer.path is Path.CLASSIFIER and answer.classifier == "local-embedding"
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
