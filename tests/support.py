"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import functions_framework

from tests.fakes import (
    FakeClock,
    HashingEmbedder,
    InMemoryMemory,
    InMemoryTicketStore,
    RecordingPublisher,
    ScriptedClassifier,
)
from triage import bootstrap, service
from triage.adapters.chroma import ChromaMemory
from triage.domain import Labels


def connect_chroma(
    url: str, collection: str, embedding_model: str = "test-model", version: str = "1", **options
) -> ChromaMemory:
    parts = urlsplit(url)
    return ChromaMemory.connect(
        host=parts.hostname,
        port=parts.port,
        ssl=False,
        token=None,
        tenant="default_tenant",
        database="default_database",
        collection=collection,
        embedding_model=embedding_model,
        model_version=version,
        **options,
    )


MAIN = str(Path(__file__).parents[1] / "functions" / "main.py")


class Api:
    def __init__(self, taxonomy):
        self.store = InMemoryTicketStore()
        self.publisher = RecordingPublisher()
        self.memory = InMemoryMemory()
        self.clock = FakeClock()
        bootstrap.reset()  # settings come from the environment as it is now
        bootstrap.override(
            store=self.store, publisher=self.publisher, memory=self.memory, clock=self.clock, taxonomy=taxonomy
        )
        self.app = functions_framework.create_app("api", MAIN)
        self.client = self.app.test_client()

    def post(self, path: str, body=None, headers=None, **kwargs):
        if body is not None and "data" not in kwargs:
            kwargs["data"] = json.dumps(body)
            kwargs.setdefault("content_type", "application/json")
        return self.client.post(path, headers=headers or {}, **kwargs)

    def process(self, ticket_id: str, labels: Labels, taxonomy) -> service.Outcome:
        """What the worker does with the ticket's message, on this API's store and memory."""
        return service.process(
            ticket_id,
            store=self.store,
            embedder=HashingEmbedder(),
            memory=self.memory,
            classifier=ScriptedClassifier(labels),
            taxonomy=taxonomy,
            clock=self.clock,
        )

    def nothing_stored(self) -> bool:
        return self.store.tickets == {} and self.publisher.messages == []


def error_of(response) -> dict:
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]
