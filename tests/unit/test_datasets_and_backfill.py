from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import HashingEmbedder, InMemoryMemory
from triage.domain import Labels, LabelSource, MemoryEntry
from triage.errors import MemoryUnavailable
from triage.offline.backfill import Shard, backfill
from triage.offline.datasets import (
    Columns,
    LabelledRow,
    Rejection,
    labelled_rows,
    memory_history,
    taxonomy_from_labels,
    varying_labels,
)

COLUMNS = Columns(title="title", description="body", category="category", priority="priority")


def write_csv(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["title", "body", "category", "priority"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rows_are_checked_against_the_taxonomy_with_reasons(tmp_path, taxonomy):
    path = write_csv(
        tmp_path,
        [
            {"title": "VPN drops", "body": "every hour", "category": "Network", "priority": ""},
            {"title": "", "body": "", "category": "Network", "priority": ""},
            {"title": "Printer", "body": "jam", "category": "Plumbing", "priority": ""},
            {"title": "Laptop", "body": "broken", "category": "Hardware", "priority": "Whenever"},
            {"title": "VPN drops", "body": "every hour", "category": "Network", "priority": "High"},
            {"title": "Ünïcode ✓", "body": "multi\nline", "category": "", "priority": ""},
        ],
    )
    results = list(labelled_rows(path, COLUMNS, taxonomy=taxonomy, max_chars=4000))
    (good,) = [r for r in results if isinstance(r, LabelledRow)]
    assert good.text == "VPN drops\nevery hour"
    assert good.labels == Labels("Network", "Medium", "Network Operations")  # defaults from the taxonomy
    assert good.row_id.startswith("imported-")
    assert [r.reason for r in results if isinstance(r, Rejection)] == [
        "empty text",
        "category 'Plumbing' is not in the taxonomy",
        "priority 'Whenever' is not in the taxonomy",
        "same text as line 2",
        "no category",
    ]


def test_json_lines_with_ids_and_without_a_taxonomy(tmp_path):
    path = tmp_path / "tickets.jsonl"
    lines = [
        {"id": "A-1", "summary": "Disk full", "queue": "Storage"},
        "not json",
        {"id": "A-1", "summary": "Another", "queue": "Storage"},
        {"id": "A-2", "summary": "Mailbox", "queue": "Mail"},
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    columns = Columns(title="summary", category="queue", row_id="id")
    results = list(labelled_rows(path, columns, taxonomy=None, max_chars=4000))
    assert [r.row_id for r in results if isinstance(r, LabelledRow)] == ["A-1", "A-2"]
    not_json, repeated = (r.reason for r in results if isinstance(r, Rejection))
    assert not_json.startswith("not JSON")
    assert repeated == "same id as line 1"
    taxonomy = taxonomy_from_labels([r for r in results if isinstance(r, LabelledRow)])
    assert taxonomy.category_names == ("Mail", "Storage")


def test_a_missing_column_is_named(tmp_path):
    path = write_csv(tmp_path, [{"title": "x", "body": "", "category": "Network", "priority": ""}])
    (rejection,) = labelled_rows(path, Columns(title="subject", category="category"), taxonomy=None, max_chars=10)
    assert rejection.reason == "no column subject"


def rows(count: int) -> list[LabelledRow]:
    return [
        LabelledRow(i, f"id-{i}", f"ticket number {i} about vpn", Labels("Network", "Medium", "Network Operations"))
        for i in range(count)
    ]


def test_backfill_loads_skips_known_ids_and_counts_rejections():
    memory, embedder = InMemoryMemory(), HashingEmbedder()
    report = backfill(
        [*rows(5), Rejection(9, "empty text")], embedder=embedder, memory=memory, tenant="acme", chunk_size=2
    )
    assert (report.loaded, report.skipped, dict(report.rejected)) == (5, 0, {"empty text": 1})
    assert {e.label_source for e in memory.stored.values()} == {LabelSource.IMPORTED}
    assert {e.tenant for e in memory.stored.values()} == {"acme"}
    calls = embedder.calls
    again = backfill(rows(7), embedder=embedder, memory=memory, tenant="acme", chunk_size=2)
    assert (again.loaded, again.skipped) == (2, 5)
    assert embedder.calls - calls == 2  # only the two chunks holding new rows were embedded


def test_an_interrupted_backfill_is_finished_by_running_it_again():
    memory, embedder = InMemoryMemory(), HashingEmbedder()
    original = memory.remember
    written = 0

    def fail_on_the_third_chunk(*entries):
        nonlocal written
        if written == 2:
            raise MemoryUnavailable("connection reset")
        written += 1
        original(*entries)

    memory.remember = fail_on_the_third_chunk
    with pytest.raises(MemoryUnavailable):
        backfill(rows(10), embedder=embedder, memory=memory, tenant="acme", chunk_size=2)
    assert len(memory.stored) == 4
    memory.remember = original
    report = backfill(rows(10), embedder=embedder, memory=memory, tenant="acme", chunk_size=2)
    assert (report.loaded, report.skipped) == (6, 4)
    assert sorted(memory.stored) == sorted(f"id-{i}" for i in range(10))


@pytest.mark.parametrize("spec", ["3/2", "x/4", "1/0", "-1/2", "2", "1/2/3", ""])
def test_a_shard_that_cannot_be_is_refused(spec):
    with pytest.raises(ValueError):
        Shard.parse(spec, {})


def test_shards_partition_the_rows_and_auto_reads_the_cloud_run_task():
    assert Shard.parse("auto", {"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "8"}) == Shard(2, 8)
    assert Shard.parse("auto", {}) == Shard(0, 1)
    ids = [f"row-{i}" for i in range(1000)]
    owners = [[s for s in range(4) if Shard(s, 4).holds(row)] for row in ids]
    assert all(len(owner) == 1 for owner in owners)  # each row in exactly one shard
    assert min(sum(owner == [s] for owner in owners) for s in range(4)) > 200  # and spread evenly


def test_two_shards_load_what_one_run_loads():
    whole, sharded = InMemoryMemory(), InMemoryMemory()
    backfill(rows(40), embedder=HashingEmbedder(), memory=whole, tenant="acme", chunk_size=7)
    reports = [
        backfill(rows(40), embedder=HashingEmbedder(), memory=sharded, tenant="acme", chunk_size=7, shard=Shard(i, 2))
        for i in range(2)
    ]
    assert sum(r.loaded for r in reports) == 40 and all(r.other_shards == 40 - r.loaded for r in reports)
    assert sharded.stored == whole.stored


def test_a_write_behind_keeps_one_write_in_flight_and_raises_its_errors():
    from triage.offline.write_behind import WriteBehind

    done: list[int] = []

    def fail() -> None:
        raise OSError("write failed")

    with WriteBehind("test") as writer:
        writer.submit(done.append, 1)
        writer.submit(done.append, 2)  # waits for the first
        assert done[0] == 1
    assert done == [1, 2]  # leaving the block waited for the last
    with pytest.raises(OSError, match="write failed"), WriteBehind("test") as writer:
        writer.submit(fail)
        writer.submit(done.append, 3)  # the failed write's error surfaces here
    assert done == [1, 2]
    with pytest.raises(OSError, match="write failed"), WriteBehind("test") as writer:
        writer.submit(fail)  # ...or when the block ends
    with pytest.raises(KeyError), WriteBehind("test") as writer:
        writer.submit(fail)
        raise KeyError("the block's own error is not masked")


def test_the_memory_as_history_keeps_what_the_classifier_of_record_or_a_person_labelled():
    def entry(ticket_id: str, source: LabelSource, priority: str = "Medium", text: str = "some text") -> MemoryEntry:
        labels = Labels("Network", priority, "Service Desk")
        return MemoryEntry(ticket_id, "acme", (), text, labels, source)

    entries = [
        entry("t3", LabelSource.MODEL),
        entry("t1", LabelSource.HUMAN, "High"),
        entry("t2", LabelSource.MEMORY),  # the memory's own answer: grading the memory by itself
        entry("t4", LabelSource.IMPORTED),
        entry("t5", LabelSource.MODEL, text=""),  # nothing to embed
    ]
    rows, left_out = memory_history(entries)
    assert [(r.line, r.row_id) for r in rows] == [(1, "t1"), (2, "t3"), (3, "t4")] and left_out == 2
    assert rows[0] == LabelledRow(1, "t1", "some text", Labels("Network", "High", "Service Desk"))
    # A label that follows from the category (one value per category: a default backfill filled in,
    # or the category's own group) has nothing of its own to calibrate.
    assert varying_labels(rows) == ["category", "priority"]  # Network: High and Medium
    assert varying_labels(rows[1:]) == ["category"]
    by_category = [
        LabelledRow(i, f"r{i}", "text", Labels(c, "Medium", g))
        for i, (c, g) in enumerate(
            [("Network", "Service Desk"), ("Hardware", "End User Computing"), ("Network", "Service Desk")]
        )
    ]
    assert varying_labels(by_category) == ["category"]  # each category's own group: derived
    moved = [*by_category, LabelledRow(9, "r9", "text", Labels("Network", "Medium", "Infrastructure"))]
    assert varying_labels(moved) == ["category", "assignment_group"]
