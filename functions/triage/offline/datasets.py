"""Labelled ticket files (CSV or JSON Lines) for ``backfill``, ``evaluate`` and ``calibrate``.

Reading and checking only: each row becomes a ``LabelledRow`` (its text cut exactly as
a live ticket's, so the memory stores what the classifier would have seen) or a
``Rejection`` with the reason. This module must never touch the memory or a model.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..domain import AssignmentGroup, Category, Labels, LabelSource, MemoryEntry, Priority, Taxonomy, model_text


@dataclasses.dataclass(frozen=True)
class Columns:
    title: str
    description: str | None = None
    category: str = "category"
    priority: str | None = None
    assignment_group: str | None = None
    row_id: str | None = None


@dataclasses.dataclass(frozen=True)
class LabelledRow:
    line: int
    row_id: str
    text: str
    labels: Labels


@dataclasses.dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


def read_records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, record) for each row of a CSV (with a header) or JSON Lines file."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    yield number, {"__error__": f"not JSON: {error.msg}"}
                    continue
                yield number, record if isinstance(record, dict) else {"__error__": "not a JSON object"}
        return
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            yield reader.line_num, record


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def content_id(text: str) -> str:
    return "imported-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def labelled_rows(
    path: Path,
    columns: Columns,
    *,
    taxonomy: Taxonomy | None,
    max_chars: int,
    redact: Callable[[str], str] = lambda text: text,
) -> Iterator[LabelledRow | Rejection]:
    """Every row, checked. With a taxonomy, labels outside it are rejected and missing
    priority or group take the taxonomy's defaults; without one, any label is kept."""
    seen: dict[str, int] = {}
    for line, record in read_records(path):
        if "__error__" in record:
            yield Rejection(line, str(record["__error__"]))
            continue
        missing = [c for c in (columns.title, columns.category) if c not in record]
        if missing:
            yield Rejection(line, f"no column {', '.join(missing)}")
            continue
        title = _text(record.get(columns.title))
        description = _text(record.get(columns.description)) if columns.description else ""
        text = redact(model_text(title, description))[:max_chars]  # what the classifier would see
        if not text:
            yield Rejection(line, "empty text")
            continue
        category = _text(record.get(columns.category))
        if not category:
            yield Rejection(line, "no category")
            continue
        priority = _text(record.get(columns.priority)) if columns.priority else ""
        group = _text(record.get(columns.assignment_group)) if columns.assignment_group else ""
        if taxonomy is not None:
            if category not in taxonomy.category_names:
                yield Rejection(line, f"category {category!r} is not in the taxonomy")
                continue
            priority = priority or taxonomy.default_priority
            group = group or taxonomy.default_group_for(category)
            if priority not in taxonomy.priority_names:
                yield Rejection(line, f"priority {priority!r} is not in the taxonomy")
                continue
            if group not in taxonomy.assignment_group_names:
                yield Rejection(line, f"assignment group {group!r} is not in the taxonomy")
                continue
        row_id = _text(record.get(columns.row_id)) if columns.row_id else content_id(text)
        if not row_id:
            yield Rejection(line, "no id")
            continue
        if row_id in seen:
            what = "id" if columns.row_id else "text"
            yield Rejection(line, f"same {what} as line {seen[row_id]}")
            continue
        seen[row_id] = line
        yield LabelledRow(line, row_id, text, Labels(category, priority or "-", group or "-"))


# Whose labels are history to fit on: the classifier of record's, a person's, and those of the
# tickets backfill imported. An entry answered from memory holds the memory's own guess: fitting
# the memory on it would grade the memory by itself.
HISTORY_SOURCES = (LabelSource.MODEL, LabelSource.HUMAN, LabelSource.IMPORTED)


def memory_history(entries: Iterable[MemoryEntry]) -> tuple[list[LabelledRow], int]:
    """A tenant's memory record as labelled history, ordered by ticket id (the stream order is then
    the same seeded permutation as a file's), and how many entries were left out."""
    rows, left_out = [], 0
    for entry in entries:
        if entry.label_source in HISTORY_SOURCES and entry.text:
            rows.append(LabelledRow(0, entry.ticket_id, entry.text, entry.labels))
        else:
            left_out += 1
    rows.sort(key=lambda row: row.row_id)
    return [dataclasses.replace(row, line=number) for number, row in enumerate(rows, start=1)], left_out


def varying_labels(rows: list[LabelledRow]) -> list[str]:
    """The category, and each other label that varies within a category somewhere in ``rows``.
    One that follows from the category (a single value per category: a default that backfill
    filled in, the priority everywhere or the category's own group) has nothing of its own to
    calibrate, and a second bar on the same evidence would only answer less."""

    def follows_category(label: str) -> bool:
        seen: dict[str, str] = {}
        return all(
            seen.setdefault(r.labels.category, getattr(r.labels, label)) == getattr(r.labels, label) for r in rows
        )

    return ["category", *(label for label in ("priority", "assignment_group") if not follows_category(label))]


def taxonomy_from_labels(rows: list[LabelledRow]) -> Taxonomy:
    """A taxonomy with exactly the labels a dataset uses (for evaluating on foreign data)."""

    def names(values: set[str]) -> list[str]:
        return sorted(values) or ["-"]

    categories = names({r.labels.category for r in rows})
    priorities = names({r.labels.priority for r in rows})
    groups = names({r.labels.assignment_group for r in rows})
    return Taxonomy(
        categories=tuple(Category(name=c, description=c) for c in categories),
        priorities=tuple(Priority(name=p, description=p) for p in priorities),
        assignment_groups=tuple(AssignmentGroup(name=g) for g in groups),
        default_priority=priorities[0],
    )
