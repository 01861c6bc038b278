"""How a ticket is stored in Firestore: the domain's frozen values as a document and back.

Plain JSON types and datetimes. The caller's free-form metadata is kept as the JSON text
it arrived as (Firestore cannot store every JSON value, arrays of arrays for one), and a
classified ticket carries ``time_to_classify_ms`` for ``GET /stats`` to read by projection.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..domain import AnswerPath, Audit, Classification, Correction, Labels, Status, Ticket, Writeback, WritebackStatus


def _labels_from_record(record: Mapping[str, Any] | None) -> Labels | None:
    return Labels(**record) if record else None


def ticket_to_document(ticket: Ticket) -> dict[str, Any]:
    record = dataclasses.asdict(ticket)
    record["status"] = ticket.status.value
    record["metadata"] = json.dumps(dict(ticket.metadata), ensure_ascii=False, separators=(",", ":"))
    if ticket.classification:
        record["classification"]["path"] = ticket.classification.path.value
        record["classification"]["example_ticket_ids"] = list(ticket.classification.example_ticket_ids)
        record["classification"]["degraded"] = list(ticket.classification.degraded)
        record["classification"]["probabilities"] = dict(ticket.classification.probabilities)
    record["corrections"] = [
        {**dataclasses.asdict(c), "previous": c.previous.as_dict() if c.previous else None} for c in ticket.corrections
    ]
    if ticket.writeback:
        record["writeback"] = {
            **dataclasses.asdict(ticket.writeback),
            "status": ticket.writeback.status.value,
            "calls": [dict(c) for c in ticket.writeback.calls],
            "written": dict(ticket.writeback.written),
            "skipped": list(ticket.writeback.skipped),
        }
    classified_at = ticket.classification.classified_at if ticket.classification else None
    if classified_at is not None:
        record["time_to_classify_ms"] = round((classified_at - ticket.created_at).total_seconds() * 1000, 1)
    return record


def ticket_from_document(document: Mapping[str, Any]) -> Ticket:
    fields = {f.name for f in dataclasses.fields(Ticket)}
    values = {k: v for k, v in document.items() if k in fields}
    values["status"] = Status(document["status"])
    metadata = document.get("metadata")
    values["metadata"] = json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {})
    classification = document.get("classification")
    if classification:
        values["classification"] = Classification(
            **{
                **classification,
                "labels": _labels_from_record(classification["labels"]),
                "path": AnswerPath(classification["path"]),
                "example_ticket_ids": tuple(classification.get("example_ticket_ids") or ()),
                "degraded": tuple(classification.get("degraded") or ()),
                "probabilities": dict(classification.get("probabilities") or {}),
            }
        )
    values["corrections"] = tuple(
        Correction(
            **{
                **c,
                "labels": _labels_from_record(c["labels"]),
                "previous": _labels_from_record(c.get("previous")),
            }
        )
        for c in document.get("corrections") or ()
    )
    audit = document.get("audit")
    if audit:
        values["audit"] = Audit(**{**audit, "labels": Labels(**audit["labels"]), "agreed": dict(audit["agreed"])})
    writeback = document.get("writeback")
    if writeback:
        values["writeback"] = Writeback(
            **{
                **writeback,
                "status": WritebackStatus(writeback["status"]),
                "calls": tuple(writeback.get("calls") or ()),
                "written": dict(writeback.get("written") or {}),
                "skipped": tuple(writeback.get("skipped") or ()),
            }
        )
    return Ticket(**values)
