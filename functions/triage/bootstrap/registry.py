"""The components a process builds once: built on first use, cached, and swapped by tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.RLock()
_built: dict[str, Any] = {}
_overrides: dict[str, Any] = {}


def _component(name: str, factory: Callable[[], T]) -> T:
    if name in _overrides:
        return _overrides[name]
    built = _built.get(name)
    if built is not None:
        return built
    with _lock:
        if name not in _built:
            _built[name] = factory()
        return _built[name]


def override(**components: Any) -> None:
    """Use these components instead of building them (tests, tools); use cases are bound again."""
    with _lock:
        _overrides.update(components)
        for name in [name for name in _built if name.startswith("bound:") or name == "http_app"]:
            del _built[name]


def reset() -> None:
    with _lock:
        _built.clear()
        _overrides.clear()
