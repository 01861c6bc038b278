"""Structured JSON logs on stdout, one object per line, in the shape Cloud Logging reads.

``severity`` and ``message`` are Cloud Logging's own fields; everything passed in a
record's ``extra`` becomes a field of its own, so log-based metrics can select on
it. Callers pass identifiers, statuses and figures, never ticket text or secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
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
