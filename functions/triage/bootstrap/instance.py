"""Starting an instance: a function's clients, connections and model are ready before its
first request instead of being built by it.

functions-framework imports ``main.py`` in gunicorn's master process, which then opens the
port and forks the process that serves. Neither a gRPC channel nor OpenMP's thread pool
survives a fork (here, a child forked after its parent had embedded one text hung on its
own first embed, torch 2.13), so an instance starts in two steps:

* ``start_instance`` (at import, in the master, before the port opens): the settings, the taxonomy,
  the client libraries and the model code imported, the API's route table built; nothing
  that opens a connection or starts a thread;
* ``connect_instance`` (in the serving process, right after the fork, before it takes a request):
  the function's use cases bound (so its clients are built), each client connected, and the
  worker's model loaded and run once.

Without a fork (tests, ``functions-framework --debug``) ``connect_instance`` never runs and each
component is built on first use, as before; components a test overrode are what is built
and warmed. Warming is best effort: a failure is logged and the first request builds or
connects what is missing, so an outside system that is down delays nothing but itself.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from .. import service
from .registry import _overrides

log = logging.getLogger("triage.instance")

# What each entry point of main.py imports before the fork: the client libraries and the
# model code its components are made of (importing them is most of a cold start).
IMPORTS: dict[str, tuple[str, ...]] = {
    "api": ("triage.adapters.firestore", "triage.adapters.pubsub", "triage.http"),
    "process_ticket": (
        "triage.adapters.firestore",
        "triage.adapters.pubsub",
        "triage.adapters.durable_memory",
        "triage.adapters.local_classifier",
        "triage.adapters.embedder",
        "chromadb",
    ),
}

_target: list[str] = []  # the entry point this process started for (at most one)


def start_instance(target: str | None = None) -> None:
    """Prepare this process for ``target`` (default: FUNCTION_TARGET, which Cloud Run and
    functions-framework set) and have the serving process connect right after its fork."""
    from . import http_app, settings, taxonomy

    target = target or os.environ.get("FUNCTION_TARGET", "")
    if target not in IMPORTS:
        return
    started = time.perf_counter()
    settings()  # a configuration error stops the instance here, not at its first request
    taxonomy()
    modules = IMPORTS[target]
    if target == "process_ticket":  # and the embedding backend's own (torch, or onnxruntime)
        from . import embedder

        modules += getattr(embedder(), "IMPORTS", ())
    for module in modules:
        importlib.import_module(module)
    if target == "api":
        http_app()
    if not _overrides:  # a real instance (a test's components are its own business)
        _freeze()
    if not _target:
        os.register_at_fork(after_in_child=_connect_after_fork)
        _target.append(target)
    log.info("instance prepared", extra={"function": target, "seconds": round(time.perf_counter() - started, 3)})


def _connect_after_fork() -> None:
    if not _overrides:  # a test's process forking has fakes in place: nothing to connect
        connect_instance(_target[0])
        _freeze()


def connect_instance(target: str) -> dict[str, float]:
    """Build and connect what ``target``'s use cases need; seconds per step (a failed step is
    logged and left to the first request)."""
    from . import bind, memory, publisher, settings, store

    steps: dict[str, Callable[[], Any]] = {
        "clients": lambda: [bind(use_case) for use_case in _USE_CASES[target]],
        "firestore": lambda: _warm(store()),
        "pubsub": lambda: _warm(publisher()),
    }
    if target == "process_ticket":
        # The model loaded and run once, then the memory's record and index asked about an id.
        steps["model"] = lambda: bind(service.warm_up)()
        steps["memory"] = lambda: memory().known(["_warm_up"], tenant=settings().default_tenant)
    seconds: dict[str, float] = {}
    for name, step in steps.items():
        began = time.perf_counter()
        try:
            step()
        except Exception as error:  # best effort: the first request builds or connects it
            log.warning("warm-up step failed", extra={"step": name, "error": f"{type(error).__name__}: {error}"})
        seconds[name] = round(time.perf_counter() - began, 3)
    log.info("instance connected", extra={"function": target, "seconds": seconds})
    return seconds


def _freeze() -> None:
    """What the instance built lives as long as the process: out of the collector's sight, so a
    collection never walks it (shorter pauses), and pages shared with the master after the fork
    stay shared (Python's gc.freeze documentation: the pre-fork use)."""
    gc.collect()
    gc.freeze()


def _warm(component: Any) -> None:
    warm_up = getattr(component, "warm_up", None)
    if callable(warm_up):
        warm_up()


_USE_CASES: dict[str, tuple[Callable[..., Any], ...]] = {
    "api": (service.ingest, service.ingest_event, service.record_feedback),
    "process_ticket": (service.process,),
}
