"""Prometheus metrics of this process, served at ``GET /metrics`` (prometheus-client).

One instance's view: what this process ingested, classified, retried. When
``PROMETHEUS_MULTIPROC_DIR`` is set (the local stack sets it for each API and worker pair)
prometheus-client keeps its values in files there and ``/metrics`` adds up every process
that wrote to the folder, so the API shows the worker's figures too. Across a fleet the
authoritative counts are ``GET /stats`` (Firestore) and the log-based metrics.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

TICKETS = Counter("triage_tickets_total", "Tickets that reached a status in this process.", ["status"])
MEMORY_LOOKUPS = Counter(
    "triage_memory_lookups_total", "Classifications by whether the memory answered (hit) or not (miss).", ["result"]
)
LLM_CALLS = Counter(
    "triage_llm_calls_total",
    "Calls to the classifier behind the memory, by classifier and outcome.",
    ["classifier", "outcome"],
)
LLM_LATENCY = Histogram(
    "triage_llm_latency_seconds",
    "Time of one classifier call, retries included.",
    ["classifier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LLM_TOKENS = Counter(
    "triage_llm_tokens_total",
    "Tokens of the classifier's calls, by classifier and direction (output includes thinking).",
    ["classifier", "direction"],
)
HTTP_REQUESTS = Counter(
    "triage_http_requests_total",
    "API requests by route (method and path template) and status class.",
    ["route", "code"],
)
HTTP_SECONDS = Histogram(
    "triage_http_request_seconds",
    "Time to answer an API request, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REVIEWS = Counter("triage_reviews_total", "Reviewers' verdicts on classified tickets.", ["verdict"])
CONFIGURATION_ERRORS = Counter(
    "triage_configuration_errors_total",
    "Calls an outside system refused for our configuration (a wrong key, a missing role), by system.",
    ["system"],
)
CONFIGURATION_ERRORS.labels("gemini")  # exported at 0 from the start: an alert or a panel sees "none yet"
RETRIES = Counter("triage_retries_total", "Attempts that failed transiently; Pub/Sub delivers the message again.")
FAILURES = Counter("triage_failures_total", "Tickets that ended Failed, by kind of fault.", ["kind"])
CLASSIFY_SECONDS = Histogram(
    "triage_classification_seconds",
    "Worker time per classified ticket (embed, memory, classifier, store).",
    ["path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MEMORY_OUTCOMES = Counter(
    "triage_memory_outcomes_total",
    "Measured outcomes of memory answers, per label and value: by the audit (the classifier of record asked "
    "in the background), a reviewer's confirmation or correction; result correct or wrong.",
    ["label", "value", "source", "result"],
)
MEMORY_PRECISION = Gauge(
    "triage_memory_precision",
    "Per tenant, label and value, as last measured: precision of memory answers (measured), its 95% Wilson "
    "lower bound (lower95), the target and the value's bar (threshold; -1: answers nothing from memory).",
    ["tenant", "label", "value", "figure"],
    multiprocess_mode="mostrecent",
)
THRESHOLD_TIGHTENED = Counter(
    "triage_memory_threshold_tightened_total",
    "Bars that rose by themselves because the measured precision fell below the target.",
    ["label", "value"],
)


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
