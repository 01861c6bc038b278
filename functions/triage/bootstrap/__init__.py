"""The composition root: builds each adapter once per process and binds the use cases to them.

A use case names its collaborators as keyword-only parameters (``store``, ``memory``,
``clock``, ...); ``bind`` supplies each from the component of that name, once per use case
and process. The entry points only look up what to call: ``handle_message`` for the
worker, ``http_app`` for the API, ``bind`` for the command line.

Components are built once and cached: when an instance starts (``start_instance``, which
``main.py`` calls at import, and ``connect_instance`` in the process that serves; the API never
loads the embedding model), else on first use. Tests swap in their own components with
``override`` and clear everything with ``reset``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..domain import WorkMessage
from ..service import DEAD_LETTER_HANDLER, MESSAGE_HANDLERS, Outcome
from .instance import connect_instance, start_instance
from .options import delivery, intake, options, pricing, recovery, redact, review_below_confidence, writeback
from .registry import _built, _component, _overrides, override, reset
from .systems import (
    api_keys,
    calibrations,
    classifier,
    clock,
    embedder,
    fallback,
    firestore_client,
    local_classifier,
    memory,
    memory_index,
    memory_records,
    publisher,
    rate_limiter,
    settings,
    store,
    targets,
    taxonomy,
    verifier,
)

VERSION = "0.1.0"
__all__ = [
    "COMPONENTS",
    "VERSION",
    "_built",
    "_overrides",
    "api_keys",
    "bind",
    "calibrations",
    "classifier",
    "clock",
    "connect_instance",
    "delivery",
    "embedder",
    "fallback",
    "firestore_client",
    "handle_message",
    "http_app",
    "intake",
    "local_classifier",
    "memory",
    "memory_index",
    "memory_records",
    "options",
    "override",
    "pricing",
    "publisher",
    "rate_limiter",
    "recovery",
    "redact",
    "reset",
    "review_below_confidence",
    "settings",
    "start_instance",
    "store",
    "targets",
    "taxonomy",
    "verifier",
    "writeback",
]

T = TypeVar("T")

COMPONENTS: dict[str, Callable[[], Any]] = {
    "settings": settings,
    "taxonomy": taxonomy,
    "clock": clock,
    "store": store,
    "publisher": publisher,
    "embedder": embedder,
    "memory": memory,
    "classifier": classifier,
    "fallback": fallback,
    "verifier": verifier,
    "calibrations": calibrations,
    "evidence": local_classifier,
    "options": options,
    "intake": intake,
    "recovery": recovery,
    "delivery": delivery,
    "writeback": writeback,
    "targets": targets,
    "pricing": pricing,
    "review_below_confidence": review_below_confidence,
}


# --------------------------------------------------------------------------- binding


def bind(use_case: Callable[..., T]) -> Callable[..., T]:
    """``use_case`` with every keyword-only collaborator it names supplied by this process's
    components; the caller passes the rest (a ticket id, a submission...). Once per process."""

    def build() -> Callable[..., T]:
        wanted = {
            name
            for name, parameter in inspect.signature(use_case).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name in COMPONENTS
        }
        return functools.partial(use_case, **{name: COMPONENTS[name]() for name in sorted(wanted)})

    return _component(f"bound:{use_case.__module__}.{use_case.__qualname__}", build)


def handle_message(message: WorkMessage) -> Outcome:
    """Run the use case of a work message: its kind's handler, or the dead-letter handler."""
    if message.dead_letter_deliveries is not None:
        return bind(DEAD_LETTER_HANDLER)(message.ticket_id, message.kind, message.dead_letter_deliveries)
    return bind(MESSAGE_HANDLERS[message.kind])(message.ticket_id)


def http_app() -> Any:
    """The API's app: the route table, served with this process's settings and use cases."""

    def build() -> Any:
        from ..http import ROUTES, App

        return App(
            ROUTES,
            settings=settings,
            taxonomy=taxonomy,
            bind=bind,
            api_keys=api_keys,
            rate_limiter=rate_limiter,
            version=VERSION,
        )

    return _component("http_app", build)
