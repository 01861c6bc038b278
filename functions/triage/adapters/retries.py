"""What the outside-call adapters share about retrying (Gemini, Jira, ServiceNow).

Which HTTP statuses are worth another attempt, the server's ``Retry-After``, and a
tenacity wait that honours it. Each adapter still owns its single retry layer.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from tenacity import RetryCallState, wait_random_exponential

# Timeouts, rate limits and server faults; anything else will fail the same way again.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(error: BaseException | None) -> float | None:
    """The server's ``Retry-After`` (seconds or an HTTP date), if it sent one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class WaitHonouringRetryAfter:
    """Full-jitter exponential backoff, but never sooner than the server asked."""

    def __init__(self, initial: float, maximum: float):
        self._jitter = wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._jitter(state)
        requested = retry_after_seconds(state.outcome.exception() if state.outcome else None)
        return max(backoff, requested) if requested is not None else backoff
