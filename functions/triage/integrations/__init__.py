"""What the engine knows of its sources, Jira and ServiceNow: reading their webhooks and
planning what to write back. Pure translation: nothing here does I/O or keeps state;
the HTTP clients are adapters and the decisions of what to store are the service's.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
from typing import Literal

from ..errors import Unauthorized
from ..service import Submission


@dataclasses.dataclass(frozen=True)
class SourceEvent:
    """A webhook delivery, understood: a ticket to create, a ticket whose text changed, or nothing."""

    action: Literal["create", "update", "ignore"]
    submission: Submission | None = None
    reason: str = ""


def verify_hmac_sha256(secret: str, body: bytes, presented: str | None, header: str) -> None:
    """Check ``sha256=<hex>`` (or a bare hex or base64 digest) against HMAC-SHA256 of the raw
    body, in constant time. Raises Unauthorized naming the header."""
    if not presented:
        raise Unauthorized(f"missing {header} signature")
    value = presented.strip()
    if value.lower().startswith("sha256="):
        value = value[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    candidates = []
    try:
        candidates.append(bytes.fromhex(value))
    except ValueError:
        pass
    try:
        candidates.append(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        pass
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise Unauthorized(f"the {header} signature does not match the body")


def truncate(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)
