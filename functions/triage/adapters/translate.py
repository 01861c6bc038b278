"""How an adapter turns an outside system's failures into the engine's errors.

Each adapter names the exceptions its client raises when the system is unreachable or
overloaded; they become one ``TransientError`` subclass that says which system and
which operation failed, so the worker retries and the API answers 503. Anything the
adapter lists in ``keep`` passes through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import TransientError


@contextmanager
def translated(
    system: str,
    what: str,
    into: type[TransientError],
    *,
    catch: tuple[type[BaseException], ...] = (Exception,),
    keep: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    try:
        yield
    except keep:
        raise
    except catch as error:
        raise into(f"{system} {what} failed: {type(error).__name__}: {error}") from error
