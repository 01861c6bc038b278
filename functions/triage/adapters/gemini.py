"""Classifier on Gemini, through google-genai, on the Gemini API (an API key) or on Vertex AI
(Application Default Credentials: the worker's service account in production).

The backend is always set explicitly (``vertexai=True`` or ``False``), so no environment
variable such as GOOGLE_GENAI_USE_VERTEXAI can switch it. The prompt and the reading of
the answer are ``gemini_prompt``'s.

How the real API fails, and what each failure becomes here:

* a key or credential the API refuses (``400 API_KEY_INVALID``, 401, 403): a configuration
  error, logged at CRITICAL and counted, raised as ClassifierMisconfigured (transient): the
  ticket falls back to the local classifier (CLASSIFIER_FALLBACK) or waits, Pending, for the
  fix (``service.process``), never Failed;
* a response schema the API finds too complex (400, "too many states"): the next, simpler
  schema is tried, for this and every later call of the process, and the ticket says so;
* any other 400 (the request's content): under a simpler schema once, then that ticket alone
  fails (InvalidModelOutput);
* 408, 429, 5xx and connection errors: retried by tenacity (the client's own retries are off),
  never sooner than the API asked (``RetryInfo.retryDelay`` in the body, or ``Retry-After``);
* an answer cut at MAX_TOKENS (thinking ate the output budget) or no candidate at all: asked
  again once, then ClassifierUnavailable, so the fallback answers and the ticket is flagged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

from .. import metrics
from ..domain import AnswerPath, Classification
from ..errors import ClassifierMisconfigured, ClassifierUnavailable, InvalidModelOutput
from ..ports import ClassificationRequest
from .gemini_prompt import SchemaLevel, few_shot_contents, parse_answer, response_schema, system_instruction
from .retries import RETRYABLE_STATUS, WaitHonouringRetryAfter

log = logging.getLogger(__name__)

# google-genai 3.6.1 builds its sync client on httpx2 (a required dependency, a fork of httpx
# under its own namespace) and falls back to httpx: either library's connection and timeout
# errors can reach us.
TRANSPORT_ERRORS = (httpx.TransportError, httpx.TimeoutException, httpx2.TransportError, httpx2.TimeoutException)
CREDENTIAL_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED"}
)
TOO_COMPLEX = "too many states"


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, genai_errors.APIError):
        return error.code in RETRYABLE_STATUS
    return isinstance(error, TRANSPORT_ERRORS)


def _reasons(error: genai_errors.APIError) -> set[str]:
    details = (error.details or {}).get("error", {}).get("details") if isinstance(error.details, dict) else None
    return {str(d.get("reason")) for d in details or () if isinstance(d, dict) and d.get("reason")}


def refuses_credentials(error: genai_errors.APIError) -> bool:
    return error.code in (401, 403) or (error.code == 400 and bool(_reasons(error) & CREDENTIAL_REASONS))


class _SchemaRefused(Exception):
    """A 400 that is not about credentials: the schema, or the request's content."""

    def __init__(self, error: genai_errors.APIError):
        super().__init__(str(error))
        self.too_complex = TOO_COMPLEX in (error.message or "")


class _Cut(Exception):
    """No usable answer: no candidate, or one stopped at MAX_TOKENS."""


class GeminiClassifier:
    def __init__(
        self,
        *,
        model: str,
        backend: str = "api",
        api_key: str | None = None,
        project: str | None = None,
        location: str | None = None,
        credentials: Any = None,
        base_url: str | None = None,
        timeout_seconds: float = 30.0,
        max_attempts: int = 5,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        output_attempts: int = 2,
        thinking_level: str | None = "low",
        temperature: float | None = None,
        max_output_tokens: int = 4096,
    ):
        self.name = model
        self._model = model
        http_options = types.HttpOptions(
            base_url=base_url,
            timeout=int(timeout_seconds * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),  # tenacity is the one retry layer
        )
        if backend == "vertex":
            self._client = genai.Client(
                vertexai=True, project=project, location=location, credentials=credentials, http_options=http_options
            )
        else:
            self._client = genai.Client(vertexai=False, api_key=api_key, http_options=http_options)
        self._max_attempts = max_attempts
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._output_attempts = output_attempts
        self._thinking_level = thinking_level
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        # Raised, once and for the process, when the API refuses a schema as too complex.
        self._schema_level = SchemaLevel.FULL

    def _config(self, request: ClassificationRequest, level: SchemaLevel) -> types.GenerateContentConfig:
        thinking = types.ThinkingConfig(thinking_level=self._thinking_level.upper()) if self._thinking_level else None
        return types.GenerateContentConfig(
            system_instruction=system_instruction(request.taxonomy),
            temperature=self._temperature,  # None: the model's own default (Gemini 3: keep 1.0)
            candidate_count=1,
            max_output_tokens=self._max_output_tokens,
            thinking_config=thinking,
            response_mime_type="application/json",
            response_schema=response_schema(request.taxonomy, level),
        )

    def _generate(self, contents: list[types.Content], config: types.GenerateContentConfig) -> Any:
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=WaitHonouringRetryAfter(self._retry_initial, maximum=min(30.0, self._retry_max)),
            stop=stop_after_attempt(self._max_attempts) | stop_before_delay(self._retry_max),
            before_sleep=lambda state: log.warning(
                "Gemini call failed; retrying",
                extra={
                    "attempt": state.attempt_number,
                    "error": repr(state.outcome.exception()) if state.outcome else None,
                    "sleep_seconds": round(state.upcoming_sleep, 2),
                },
            ),
            reraise=True,
        )
        try:
            return retrying(self._client.models.generate_content, model=self._model, contents=contents, config=config)
        except genai_errors.APIError as error:
            if refuses_credentials(error):
                metrics.CONFIGURATION_ERRORS.labels("gemini").inc()
                log.critical(
                    "Gemini refuses the configured credentials: tickets fall back or wait until it is fixed",
                    extra={"classifier": self._model, "error": f"{error.code} {error.message}"},
                )
                raise ClassifierMisconfigured(
                    f"Gemini refused the credentials: {error.code} {error.message}"
                ) from error
            if error.code == 400:
                raise _SchemaRefused(error) from error
            raise ClassifierUnavailable(f"Gemini failed: {error.code} {error.message or error}") from error
        except TRANSPORT_ERRORS as error:
            raise ClassifierUnavailable(f"Gemini unreachable: {type(error).__name__}: {error}") from error

    def _answer(self, contents: list[types.Content], request: ClassificationRequest) -> tuple[Any, list[str]]:
        """A response, under the fullest schema the API takes; what was given up on the way."""
        degraded: list[str] = []
        level = self._schema_level
        while True:
            try:
                return self._generate(contents, self._config(request, level)), degraded
            except _SchemaRefused as refused:
                if level is SchemaLevel.PLAIN:
                    raise InvalidModelOutput(f"Gemini rejected the request: {refused}") from refused
                simpler = SchemaLevel(level + 1)
                if refused.too_complex:
                    self._schema_level = max(self._schema_level, simpler)
                    log.warning(
                        "Gemini finds the response schema too complex; using a simpler one from now on",
                        extra={"schema": simpler.name.lower()},
                    )
                degraded.append(
                    f"Gemini refused the {level.name.lower()} response schema (400); answered under the "
                    f"{simpler.name.lower()} schema, the labels checked here"
                )
                level = simpler

    def classify(self, request: ClassificationRequest) -> Classification:
        contents = few_shot_contents(request.examples, request.text)
        problem: Exception | None = None
        input_tokens = output_tokens = 0
        for _ in range(self._output_attempts):
            started = time.perf_counter()
            response, degraded = self._answer(contents, request)
            usage = getattr(response, "usage_metadata", None)
            input_tokens += getattr(usage, "prompt_token_count", None) or 0
            # Thinking tokens are billed as output: they count here too.
            output_tokens += (getattr(usage, "candidates_token_count", None) or 0) + (
                getattr(usage, "thoughts_token_count", None) or 0
            )
            try:
                text = _text(response)
                labels, rationale, mended = parse_answer(text, request.taxonomy)
            except (InvalidModelOutput, _Cut) as error:
                problem = error
                log.warning("Gemini answer refused; asking again", extra={"error": str(error)})
                continue
            log.info(
                "Gemini answered",
                extra={
                    "classifier": self._model,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                },
            )
            return Classification(
                labels=labels,
                # The model reports no confidence (a ticket's author could steer it): the engine
                # measures its own (``service.classify``).
                confidence=0.0,
                rationale=rationale,
                path=AnswerPath.CLASSIFIER,
                classifier=self._model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                degraded=(*degraded, *mended),
            )
        assert problem is not None
        if isinstance(problem, _Cut):
            raise ClassifierUnavailable(f"{problem} (after {self._output_attempts} attempts)")
        raise InvalidModelOutput(f"{problem} (after {self._output_attempts} attempts)")


def _text(response: Any) -> str:
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        raise _Cut("Gemini gave no candidate")
    finish = getattr(candidates[0], "finish_reason", None)
    if finish == types.FinishReason.MAX_TOKENS:
        raise _Cut("Gemini's answer was cut at MAX_TOKENS (thinking and answer exceeded the output budget)")
    return response.text or ""
