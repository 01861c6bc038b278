"""Structured JSON logs on stdout, one object per line, in the shape Cloud Logging reads.

``severity`` and ``message`` are Cloud Logging's own fields; everything passed in a
record's ``extra`` becomes a field of its own, so log-based metrics can select on
it. Callers pass identifiers, statuses and figures, never ticket text or secrets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# The request's trace, as Cloud Logging groups a request's lines: projects/P/traces/T.
TRACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)
_CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/|;|$)")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def bind_trace(headers, project: str) -> contextvars.Token:
    """Take the trace id from ``X-Cloud-Trace-Context`` or ``traceparent``, for this request's logs."""
    trace = None
    for header, pattern in (("X-Cloud-Trace-Context", _CLOUD_TRACE), ("traceparent", _TRACEPARENT)):
        match = pattern.match((headers.get(header) or "").strip().lower())
        if match:
            trace = f"projects/{project}/traces/{match.group(1)}"
            break
    return TRACE.set(trace)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = TRACE.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO (and some log request bodies at DEBUG).
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "sentence_transformers", "chromadb", "google_genai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
