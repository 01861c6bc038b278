"""One engine wired to the in-memory fakes, through the production composition root.

``Engine`` overrides the adapters in ``triage.bootstrap`` with the fakes of ``tests.fakes``
and calls the use cases as the entry points do: bound by ``bootstrap.bind``, or through
the ``api`` and ``process_ticket`` functions under functions-framework. Settings come from
the environment as it is when the engine is built (tests set it with monkeypatch).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import functions_framework

from tests.fakes import (
    FakeClock,
    HashingEmbedder,
    InMemoryCalibrations,
    InMemoryMemory,
    InMemoryTicketStore,
    RecordingPublisher,
    ScriptedClassifier,
)
from triage import bootstrap, service, views
from triage.domain import Labels, Submission, Taxonomy, Ticket
from triage.ports import Classifier, WritebackTarget

MAIN = str(Path(__file__).parents[1] / "functions" / "main.py")
SOFTWARE = Labels("Software", "Medium", "Application Support")
TOPIC_PATH = "/projects/triage-local/topics/tickets"


class Engine:
    def __init__(
        self,
        taxonomy: Taxonomy,
        *,
        labels: Labels = SOFTWARE,
        confidence: float = 0.8,
        options: service.ProcessingOptions | None = None,
        fallback: Classifier | None = None,
        writeback_sources: frozenset[str] = frozenset(),
        targets: Mapping[str, WritebackTarget] | None = None,
    ):
        self.store = InMemoryTicketStore()
        self.publisher = RecordingPublisher()
        self.writeback_publisher = RecordingPublisher()
        self.memory = InMemoryMemory()
        self.embedder = HashingEmbedder()
        self.classifier = ScriptedClassifier(labels, confidence)
        self.clock = FakeClock()
        self.calibrations = InMemoryCalibrations()
        self.taxonomy = taxonomy
        self.queue = service.WritebackQueue(writeback_sources, self.writeback_publisher) if writeback_sources else None
        bootstrap.reset()  # settings come from the environment as it is now
        components: dict[str, Any] = {
            "store": self.store,
            "publisher": self.publisher,
            "memory": self.memory,
            "embedder": self.embedder,
            "classifier": self.classifier,
            "fallback": fallback,
            "clock": self.clock,
            "taxonomy": taxonomy,
            "writeback": self.queue,
            "targets": targets or {},
            "calibrations": self.calibrations,
        }
        if options is not None:
            components["options"] = options
        bootstrap.override(**components)

    def set(self, **components: Any) -> None:
        """Swap components (and bind the use cases again)."""
        bootstrap.override(**components)

    @property
    def options(self) -> service.ProcessingOptions:
        return bootstrap.options()

    # ------------------------------------------------------------------ use cases

    def ingest(self, submission: Submission) -> service.IngestResult:
        return bootstrap.bind(service.ingest)(submission)

    def pending(self, title: str, **fields: Any) -> str:
        """A new ticket's id, submitted and not processed."""
        return self.ingest(Submission(title=title, **fields)).ticket.ticket_id

    def process(self, ticket_id: str) -> service.Outcome:
        return bootstrap.bind(service.process)(ticket_id)

    def remember(self, ticket_id: str) -> service.Outcome:
        return bootstrap.bind(service.remember)(ticket_id)

    def submit_and_process(self, submission: Submission) -> Ticket:
        ticket_id = self.ingest(submission).ticket.ticket_id
        self.process(ticket_id)
        return self.store.tickets[ticket_id]

    def feedback(self, ticket_id: str, feedback: service.Feedback) -> Ticket:
        return bootstrap.bind(service.record_feedback)(ticket_id, feedback)

    def audit(self, ticket_id: str) -> service.Outcome:
        return bootstrap.bind(service.audit)(ticket_id)

    def write_back(self, ticket_id: str) -> service.Outcome:
        return bootstrap.bind(service.write_back)(ticket_id)

    def reconcile(self, **arguments: Any) -> service.ReconcileReport:
        return bootstrap.bind(service.reconcile)(**arguments)

    def replay(self, ticket_ids: list[str] | None, limit: int = 100) -> list[str]:
        return bootstrap.bind(service.replay_failed)(ticket_ids, limit)

    def stats(self, **arguments: Any) -> dict[str, Any]:
        return bootstrap.bind(views.stats)(**arguments)

    # ------------------------------------------------------------------ entry points

    @functools.cached_property
    def app(self) -> Any:
        """The ``api`` function under functions-framework (a WSGI app)."""
        return functions_framework.create_app("api", MAIN)

    @functools.cached_property
    def client(self) -> Any:
        return self.app.test_client()

    @functools.cached_property
    def worker(self) -> Any:
        """The ``process_ticket`` function under functions-framework."""
        return functions_framework.create_app("process_ticket", MAIN, "cloudevent").test_client()

    def post(self, path: str, body: Any = None, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        if body is not None and "data" not in kwargs:
            kwargs["data"] = json.dumps(body)
            kwargs.setdefault("content_type", "application/json")
        return self.client.post(path, headers=dict(headers or {}), **kwargs)

    def push(self, payload: object, attributes: Mapping[str, str] | None = None) -> Any:
        """Deliver a work message to the worker the way a Pub/Sub push subscription does."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        message: dict[str, Any] = {
            "data": base64.b64encode(raw).decode(),
            "messageId": "1",
            "publishTime": "2026-11-24T09:00:00Z",
        }
        if attributes:
            message["attributes"] = dict(attributes)
        envelope = {"message": message, "subscription": "projects/triage-local/subscriptions/tickets-worker"}
        return self.worker.post(TOPIC_PATH, json=envelope)

    def nothing_stored(self) -> bool:
        return self.store.tickets == {} and self.publisher.messages == []


def error_of(response: Any) -> dict:
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]
