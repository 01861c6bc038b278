"""Numbers and booleans in request bodies, taken as JSON Schema types them: ``true`` is no
integer and ``"5"`` no number (pydantic's lax mode would take both), while ``5.0`` is an
integer, as JSON Schema says (pydantic's strict mode would refuse it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    return value


def _json_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def json_int(**bounds: int) -> Any:
    # The bounds before the validator, or pydantic writes them as "ge"/"le", not "minimum"/"maximum".
    return Annotated[int, Field(**bounds), BeforeValidator(_json_number)]


def json_float(**bounds: float) -> Any:
    return Annotated[float, Field(**bounds), BeforeValidator(_json_number)]


JsonBool = Annotated[bool, BeforeValidator(_json_bool)]
