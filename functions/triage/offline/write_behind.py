"""One write in flight behind the caller: the next batch is read and embedded while the last one
is written (backfill and rebuild, whose time is the embedding and the writes in about equal parts)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any


class WriteBehind:
    """``submit`` waits for the write before it (raising its error there) and starts this one in
    the background; leaving the block waits for the last, raising its error, unless the block is
    already raising one of its own."""

    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Future | None = None

    def __enter__(self) -> WriteBehind:
        return self

    def submit(self, write: Callable[..., Any], *arguments: Any) -> None:
        self.wait()
        self._pending = self._executor.submit(write, *arguments)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            self._executor.shutdown(wait=True)
