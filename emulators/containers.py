"""The Firestore and Pub/Sub emulators and the Chroma server as containers (testcontainers),
for machines with a Docker engine; local processes (emulators/stack.py) everywhere else.

The tests choose by themselves: containers when a Docker engine answers, processes when not.
``TRIAGE_TEST_BACKEND=processes|containers`` overrides the choice; the run prints it first.
The containers share the host's network, so the ports, and the Pub/Sub emulator's pushes to
a worker on 127.0.0.1, behave exactly as with local processes (Linux Docker hosts only).

Not exercised here: the machines this project is developed on have no Docker engine.
"""

from __future__ import annotations

import os
import time
import urllib.request
from contextlib import ExitStack
from typing import Any

# Pin both with the versions the local path uses (the Cloud SDK installed here, chromadb 1.5.9).
EMULATORS_IMAGE = os.environ.get("TRIAGE_EMULATORS_IMAGE", "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators")
CHROMA_IMAGE = os.environ.get("TRIAGE_CHROMA_IMAGE", "chromadb/chroma:1.5.9")
BACKENDS = ("processes", "containers")


def docker_available() -> bool:
    try:
        from testcontainers.core.docker_client import DockerClient

        DockerClient().client.ping()
        return True
    except Exception:  # no socket, no permission, no engine: all mean "no"
        return False


def choose_backend() -> tuple[str, str]:
    """The backend and why it was chosen."""
    requested = os.environ.get("TRIAGE_TEST_BACKEND", "auto")
    if requested in BACKENDS:
        return requested, "TRIAGE_TEST_BACKEND"
    if requested != "auto":
        raise ValueError(f"TRIAGE_TEST_BACKEND must be auto, processes or containers, not {requested!r}")
    return ("containers", "a Docker engine answered") if docker_available() else ("processes", "no Docker engine")


def _ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


class Containers:
    """Start the three containers on the given ports; ``with Containers(...) as hosts``."""

    def __init__(self, firestore_port: int, pubsub_port: int, chroma_port: int):
        self.ports = {"firestore": firestore_port, "pubsub": pubsub_port, "chroma": chroma_port}
        self._stack = ExitStack()

    def __enter__(self) -> dict[str, str]:
        from testcontainers.core.container import DockerContainer

        def start(image: str, command: str) -> Any:
            container = DockerContainer(image).with_kwargs(network_mode="host").with_command(command)
            return self._stack.enter_context(container)

        try:
            emulator = "gcloud beta emulators {} start --host-port=127.0.0.1:{}"
            start(EMULATORS_IMAGE, emulator.format("firestore", self.ports["firestore"]))
            start(EMULATORS_IMAGE, emulator.format("pubsub", self.ports["pubsub"]))
            start(CHROMA_IMAGE, f"run --host 127.0.0.1 --port {self.ports['chroma']} --path /data")
            _ready(f"http://127.0.0.1:{self.ports['firestore']}/", 120)
            _ready(f"http://127.0.0.1:{self.ports['pubsub']}/", 120)
            _ready(f"http://127.0.0.1:{self.ports['chroma']}/api/v2/heartbeat", 60)
        except BaseException:
            self._stack.close()
            raise
        return {
            "firestore": f"127.0.0.1:{self.ports['firestore']}",
            "pubsub": f"127.0.0.1:{self.ports['pubsub']}",
            "chroma": f"http://127.0.0.1:{self.ports['chroma']}",
        }

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
