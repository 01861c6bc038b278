"""Who may call the API, and how often: scoped API keys and a per-caller rate limit.

Keys are configured (API_KEYS) as comma-separated entries ``<key or sha256:<hex digest>>[=scope+scope]``
with the scopes ``submit``, ``read``, ``feedback`` and ``admin`` (admin includes all; no scopes
means all). Only digests are kept in memory; a presented key is hashed and compared with every
configured digest in constant time. A missing or unknown key is 401, a known key without the
route's scope 403.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
import time

from .errors import Forbidden, TooManyRequests, Unauthorized

SCOPES = ("submit", "read", "feedback", "admin")


@dataclasses.dataclass(frozen=True)
class ApiKey:
    digest: bytes
    scopes: frozenset[str]

    @property
    def name(self) -> str:
        """A short, non-secret name for logs and rate limits: the digest's first 8 hex digits."""
        return self.digest.hex()[:8]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def parse_api_keys(value: str | None) -> tuple[ApiKey, ...]:
    keys = []
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        secret, _, scope_text = entry.partition("=")
        scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip()) or frozenset({"admin"})
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(f"API_KEYS: unknown scope(s) {sorted(unknown)}; use {', '.join(SCOPES)}")
        if secret.startswith("sha256:"):
            digest = bytes.fromhex(secret.removeprefix("sha256:"))
            if len(digest) != 32:
                raise ValueError("API_KEYS: a sha256: entry needs 64 hex digits")
        else:
            digest = hashlib.sha256(secret.encode()).digest()
        keys.append(ApiKey(digest, scopes))
    return tuple(keys)


def authorize(presented: str | None, keys: tuple[ApiKey, ...], scope: str) -> ApiKey | None:
    """The key that authorizes ``scope``; None when auth is off (no keys configured)."""
    if not keys:
        return None
    if not presented:
        raise Unauthorized("an API key is required: send it in the X-API-Key header")
    digest = hashlib.sha256(presented.encode()).digest()
    # Compare against every key, always, so timing says nothing about which one matched.
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    if found is None:
        raise Unauthorized("the API key is not valid")
    if not found.allows(scope):
        raise Forbidden(f"this API key may not {scope}: its scopes are {', '.join(sorted(found.scopes))}")
    return found


class RateLimiter:
    """A moving-window limit per caller (limits' in-memory storage): per instance of the API,
    so the effective limit across a deployment scales with its instances."""

    def __init__(self, per_minute: int):
        from limits import RateLimitItemPerMinute
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()

    def check(self, caller: str) -> None:
        with self._lock:
            if self._limiter.hit(self._item, caller):
                return
            reset = self._limiter.get_window_stats(self._item, caller).reset_time
        retry_after = max(1, int(reset - time.time()) + 1)
        raise TooManyRequests(f"rate limit of {self._item.amount} requests a minute exceeded", retry_after=retry_after)
