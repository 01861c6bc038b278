"""HTTP clients for writing labels back to Jira and ServiceNow (httpx, Basic auth).

tenacity is the only retry layer: full-jitter exponential backoff that honours
``Retry-After``, bounded in attempts and time, for 408, 429, 5xx and connection
errors. Anything else (400, 401, 403, 404) fails at once: retrying will not fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from ..domain import Call, Ticket
from ..errors import WritebackFailed
from ..sources import Source
from .retries import RETRYABLE_STATUS, WaitHonouringRetryAfter

log = logging.getLogger(__name__)


class _Retryable(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.response = response


class HttpSourceClient:
    """One source's REST API with Basic auth; ``source`` says which paths read a ticket's fields."""

    def __init__(
        self,
        source: Source,
        *,
        base_url: str,
        username: str,
        password: str,
        timeout_seconds: float = 10.0,
        http_attempts: int = 4,
        retry_initial_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.name = source.title
        self.base_url = base_url.rstrip("/")
        self._source = source
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=(username, password),
            timeout=timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": "ticket-triage/0.1"},
            transport=transport,
        )
        self._retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, (_Retryable, httpx.TransportError))),
            wait=WaitHonouringRetryAfter(retry_initial_seconds, maximum=min(10.0, retry_max_seconds)),
            stop=stop_after_attempt(http_attempts) | stop_before_delay(retry_max_seconds),
            before_sleep=lambda state: log.warning(
                "write-back call failed; retrying",
                extra={
                    "source": source.name,
                    "attempt": state.attempt_number,
                    "error": repr(state.outcome.exception()),
                },
            ),
            reraise=True,
        )

    def _request(self, method: str, path: str, params: Mapping[str, str], body: Any) -> httpx.Response:
        def attempt() -> httpx.Response:
            response = self._client.request(method, path, params=dict(params), json=body)
            if response.status_code in RETRYABLE_STATUS:
                raise _Retryable(response)
            return response

        try:
            response = self._retrying(attempt)
        except _Retryable as error:
            raise WritebackFailed(f"{self.name} {method} {path} kept failing: {error}") from error
        except httpx.TransportError as error:
            raise WritebackFailed(f"{self.name} unreachable: {type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            raise WritebackFailed(f"{self.name} {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def read(self, ticket: Ticket) -> Mapping[str, Any]:
        path, params = self._source.read_request(ticket)
        return self._source.read_fields(self._request("GET", path, params, None).json())

    def send(self, call: Call) -> int:
        return self._request(call.method, call.path, call.params, call.body).status_code
