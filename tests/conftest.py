"""Shared test set-up: a marker per layer (from the folder), a clean environment and
a clean composition root for every test."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import pytest

from triage import bootstrap
from triage.config import DEFAULT_TAXONOMY_FILE, load_taxonomy
from triage.domain import Taxonomy

TESTS = Path(__file__).parent
LAYERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "load": "slow", "infra": "infra"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the slow load and fault tests (tests/load)")


def pytest_report_header(config: pytest.Config) -> str:
    from emulators.containers import choose_backend

    backend, why = choose_backend()
    return f"emulators and Chroma: {backend} ({why}; set TRIAGE_TEST_BACKEND to choose)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --slow (make test-slow)")
    for item in items:
        layer = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, LAYERS[layer]))
        if layer == "load" and not config.getoption("--slow"):
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def isolate_environment():
    """Restore os.environ and forget every built component after each test."""
    saved = dict(os.environ)
    bootstrap.reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        bootstrap.reset()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(DEFAULT_TAXONOMY_FILE)


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory):
    """The Firestore and Pub/Sub emulators, a Chroma server and the fake Gemini server, once per
    session; an emulator already named by FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST is reused."""
    from emulators.containers import Containers, choose_backend
    from emulators.stack import LocalStack, StackConfig, free_port

    with ExitStack() as running:
        reused = {
            "firestore": os.environ.get("FIRESTORE_EMULATOR_HOST"),
            "pubsub": os.environ.get("PUBSUB_EMULATOR_HOST"),
            "chroma": None,
        }
        if choose_backend()[0] == "containers" and not any(reused.values()):
            reused = running.enter_context(Containers(free_port(), free_port(), free_port()))
        config = StackConfig(
            project="triage-test",
            firestore_port=free_port(),
            pubsub_port=free_port(),
            chroma_port=free_port(),
            fake_gemini_port=free_port(),
            workdir=tmp_path_factory.mktemp("stack"),
            firestore_emulator_host=reused["firestore"],
            pubsub_emulator_host=reused["pubsub"],
            chroma_url=reused["chroma"],
            start_fake_gemini=True,
            inherit_settings=False,
        )
        stack = LocalStack(config)
        try:
            stack.start_infrastructure()
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def emulator_env(infrastructure, monkeypatch):
    """Point the Google client libraries in this process at the emulators."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", infrastructure.firestore_host)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", infrastructure.pubsub_host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", infrastructure.config.project)
    return infrastructure


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 as a worker runs it (its ONNX export after `make model`), loaded once."""
    from triage.adapters.embedder import build_embedder

    model = build_embedder("auto", "all-MiniLM-L6-v2")
    model.load()
    return model
