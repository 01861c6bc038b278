"""An instance's start: prepared at import without connecting anything, connected in the
process that serves (after gunicorn's fork), with whatever components a test put in place."""

from __future__ import annotations

import json

import pytest

from tests.fakes import InMemoryTicketStore, RecordingPublisher
from tests.harness import Engine
from triage import bootstrap


class Warmed:
    """Counts the warm-ups of the component it wraps (the adapters' ``warm_up``)."""

    def __init__(self, failing: bool = False) -> None:
        self.warmed = 0
        self.failing = failing

    def warm_up(self) -> None:
        self.warmed += 1
        if self.failing:
            raise ConnectionError("refused")


class WarmStore(InMemoryTicketStore, Warmed):
    def __init__(self, failing: bool = False) -> None:
        InMemoryTicketStore.__init__(self)
        Warmed.__init__(self, failing)


class WarmPublisher(RecordingPublisher, Warmed):
    def __init__(self) -> None:
        RecordingPublisher.__init__(self)
        Warmed.__init__(self)


@pytest.fixture
def engine(taxonomy) -> Engine:
    engine = Engine(taxonomy)
    engine.store, engine.publisher = WarmStore(), WarmPublisher()
    engine.set(store=engine.store, publisher=engine.publisher)
    return engine


def test_start_prepares_the_api_without_connecting_anything(engine: Engine):
    bootstrap.start_instance("api")
    assert "settings" in bootstrap._built and "http_app" in bootstrap._built
    assert bootstrap.store().warmed == 0 and bootstrap.publisher().warmed == 0
    assert engine.publisher.messages == []


def test_start_reads_the_function_from_function_target(engine: Engine, monkeypatch):
    monkeypatch.setenv("FUNCTION_TARGET", "trivial")  # not ours: nothing is prepared
    bootstrap.start_instance()
    assert "settings" not in bootstrap._built


def test_connecting_the_api_builds_and_warms_its_clients(engine: Engine):
    seconds = bootstrap.connect_instance("api")
    assert set(seconds) == {"clients", "firestore", "pubsub"}
    assert bootstrap.store().warmed == 1 and bootstrap.publisher().warmed == 1
    assert engine.publisher.messages == []  # connected, nothing sent


def test_connecting_the_worker_also_runs_the_model_once_and_asks_the_memory(engine: Engine):
    seconds = bootstrap.connect_instance("process_ticket")
    assert {"model", "memory"} <= set(seconds)
    assert engine.embedder.calls >= 1  # the warm-up text, at least
    assert engine.store.tickets == {} and engine.publisher.messages == []


def test_a_failed_warm_up_is_logged_and_left_to_the_first_request(engine: Engine, capsys):
    engine.store = WarmStore(failing=True)
    engine.set(store=engine.store)
    capsys.readouterr()
    bootstrap.connect_instance("api")
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(line.get("step") == "firestore" and line["severity"] == "WARNING" for line in logged)
    assert bootstrap.publisher().warmed == 1  # the other steps still ran
    assert engine.post("/classify", {"title": "VPN down"}).status_code == 202
