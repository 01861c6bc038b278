"""What the outside-call adapters share about retrying (Gemini, Jira, ServiceNow).

Which HTTP statuses are worth another attempt, when the server asked us to come back
(``RetryInfo`` in a Google error body, or ``Retry-After``), and a tenacity wait that honours
it. Each adapter still owns its single retry layer.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from tenacity import RetryCallState, wait_random_exponential

# Timeouts, rate limits and server faults; anything else will fail the same way again.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_info_seconds(error: BaseException | None) -> float | None:
    """The delay a Google API asks for in its error body: ``google.rpc.RetryInfo.retryDelay``
    (a protobuf Duration in JSON, e.g. ``"2s"`` or ``"0.5s"``). Gemini's 429 carries it there."""
    body = getattr(error, "details", None)
    details = body.get("error", {}).get("details") if isinstance(body, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def retry_after_seconds(error: BaseException | None) -> float | None:
    """When the server asked us to come back: ``RetryInfo`` in a Google error body, else the
    ``Retry-After`` header (seconds or an HTTP date); None if it said nothing."""
    from_body = retry_info_seconds(error)
    if from_body is not None:
        return from_body
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
