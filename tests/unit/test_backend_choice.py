"""Which backend runs the emulators and Chroma for the tests (emulators/containers.py)."""

from __future__ import annotations

import pytest

from emulators.containers import choose_backend, docker_available


def test_no_docker_engine_means_local_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    monkeypatch.delenv("TRIAGE_TEST_BACKEND", raising=False)
    assert docker_available() is False
    assert choose_backend() == ("processes", "no Docker engine")


@pytest.mark.parametrize("backend", ["processes", "containers"])
def test_the_environment_variable_overrides_the_choice(monkeypatch, backend):
    monkeypatch.setenv("TRIAGE_TEST_BACKEND", backend)
    assert choose_backend() == (backend, "TRIAGE_TEST_BACKEND")


def test_an_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("TRIAGE_TEST_BACKEND", "kubernetes")
    with pytest.raises(ValueError, match="auto, processes or containers"):
        choose_backend()
