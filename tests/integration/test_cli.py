"""The ``triage`` command line against a real Chroma server and the real embedding model."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emulators.stack import free_port
from tests.support import durable_memory
from triage import bootstrap, cli

DATA = Path(__file__).parents[1] / "data"
SAMPLE = DATA / "it_tickets_sample.csv"
COLUMNS = ["--title-column", "Document", "--category-column", "Topic_group"]


@pytest.fixture
def chroma_env(emulator_env, embedder, monkeypatch):
    """The memory on the Firestore emulator and the Chroma server, in collections of this test's own."""
    chroma = urlsplit(emulator_env.chroma_url)
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CHROMA_HOST", chroma.hostname)
    monkeypatch.setenv("CHROMA_PORT", str(chroma.port))
    monkeypatch.setenv("CHROMA_COLLECTION", collection)
    monkeypatch.setenv("MEMORY_COLLECTION", collection)
    monkeypatch.setenv("TAXONOMY_FILE", str(DATA / "it_service_taxonomy.json"))
    bootstrap.override(embedder=embedder)
    return emulator_env, collection


def run(capsys, *arguments: str) -> tuple[int, dict]:
    code = cli.main([*arguments, "--json"])
    output = capsys.readouterr().out
    return code, json.loads(output) if code == 0 else {}


def first_rows(tmp_path: Path, count: int) -> Path:
    with SAMPLE.open(newline="") as source:
        lines = list(csv.reader(source))
    path = tmp_path / "part.csv"
    with path.open("w", newline="") as target:
        csv.writer(target).writerows(lines[: count + 1])
    return path


def test_backfill_loads_then_skips_and_resumes(chroma_env, capsys, tmp_path, embedder):
    stack, collection = chroma_env
    code, report = run(capsys, "backfill", str(first_rows(tmp_path, 150)), *COLUMNS)
    assert code == 0 and (report["loaded"], report["skipped"], report["rejected"]) == (150, 0, 0)
    # As if the first run had stopped after 150 rows: the full run loads only the rest.
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS, "--chunk-size", "64")
    assert (report["loaded"], report["skipped"]) == (250, 150)
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert (report["loaded"], report["skipped"]) == (0, 400)
    memory = durable_memory(stack, collection, embedder.name, embedder.version)
    assert memory.index.count("default") == 400 and memory.records.count("default") == 400
    query = embedder.embed(["unable to access shared folder"])[0]
    assert memory.nearest(query, tenant="default", limit=3)[0].label_source.value == "imported"


def test_two_shards_load_exactly_what_one_run_loads(chroma_env, capsys, monkeypatch, embedder):
    stack, collection = chroma_env
    _, first = run(capsys, "backfill", str(SAMPLE), *COLUMNS, "--shard", "0/2")
    monkeypatch.setenv("CLOUD_RUN_TASK_INDEX", "1")  # a Cloud Run job's second task
    monkeypatch.setenv("CLOUD_RUN_TASK_COUNT", "2")
    _, second = run(capsys, "backfill", str(SAMPLE), *COLUMNS, "--shard", "auto")
    assert (first["shard"], second["shard"]) == ("0/2", "1/2")
    assert first["loaded"] + second["loaded"] == 400 and first["other_shards"] == second["loaded"]
    sharded = durable_memory(stack, collection, embedder.name, embedder.version)
    monkeypatch.setenv("MEMORY_COLLECTION", "whole-" + collection)
    monkeypatch.setenv("CHROMA_COLLECTION", "whole-" + collection)
    bootstrap.reset()
    bootstrap.override(embedder=embedder)
    _, whole = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    unsharded = durable_memory(stack, "whole-" + collection, embedder.name, embedder.version)
    assert whole["loaded"] == 400
    assert entries(sharded) == entries(unsharded)


def entries(memory) -> list[tuple]:
    """Every entry on record and in the index, as comparable values."""
    recorded = sorted((e.ticket_id, e.text, e.labels, e.label_source) for _, e in memory.records.scan("default"))
    indexed = sorted((e.ticket_id, e.text, e.labels, e.label_source) for e in memory.index.entries("default"))
    assert recorded == indexed
    return recorded


@pytest.mark.parametrize("shard", ["3/2", "x/4", "1/0", "-1/2", "2"])
def test_a_shard_that_cannot_be_is_refused(chroma_env, capsys, shard):
    assert cli.main(["backfill", str(SAMPLE), *COLUMNS, f"--shard={shard}"]) == 1
    assert "--shard" in capsys.readouterr().err


def test_backfill_rejects_labels_outside_the_taxonomy_with_reasons(chroma_env, capsys, monkeypatch):
    monkeypatch.delenv("TAXONOMY_FILE")  # the default IT taxonomy has Access, Hardware, Purchase only
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert code == 0
    assert report["loaded"] + report["rejected"] == 400
    assert "category 'HR Support' is not in the taxonomy" in report["rejected_reasons"]


def test_rebuild_builds_the_index_for_another_model_from_the_record(chroma_env, capsys, embedder):
    stack, collection = chroma_env
    code, _ = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert code == 0

    class Renamed:
        """The same weights under another model name: the memory must be rebuilt for it."""

        name, version = "minilm-renamed", "2"

        def embed(self, texts):
            return embedder.embed(texts)

    bootstrap.reset()  # a new process: nothing built for the old model survives
    bootstrap.override(embedder=Renamed())
    assert cli.main(["backfill", str(SAMPLE), *COLUMNS]) == 1
    assert "run `triage rebuild`" in capsys.readouterr().err
    code, result = run(capsys, "rebuild")
    assert (result["entries"], result["embedded"], result["model"]) == ({"default": 400}, 400, "minilm-renamed@2")
    assert durable_memory(stack, collection, "minilm-renamed", "2").index.count("default") == 400
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert (report["loaded"], report["skipped"]) == (0, 400)


def test_a_rebuild_against_an_unreachable_chroma_fails_with_a_clear_message(chroma_env, capsys, monkeypatch, tmp_path):
    assert run(capsys, "backfill", str(first_rows(tmp_path, 20)), *COLUMNS)[0] == 0
    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
    bootstrap.reset()
    assert cli.main(["rebuild"]) == 1
    assert "triage rebuild: Chroma" in capsys.readouterr().err


def test_evaluate_prints_one_table_of_figures(chroma_env, capsys):
    code, result = run(capsys, "evaluate", str(SAMPLE), *COLUMNS)
    assert code == 0
    assert result["tickets"] == 400 and result["held_out"] == 80 and result["labels"] == ["category"]
    systems = result["systems"]
    memories = {"triage", "fixed_policy", "fixed_1nn_0.80", "servicenow", "servicenow_wilson"}
    assert set(systems) == memories | {"tfidf_linear_svc"}
    for name in ("triage", "fixed_1nn_0.80", "tfidf_linear_svc"):
        figures = systems[name]
        assert 0.3 < figures["accuracy"] <= 1 and 0 < figures["macro_f1"] <= 1, name
    for name in memories:
        assert 0 <= systems[name]["llm_calls_avoided"] <= 1, name
    assert {"llm_calls_avoided", "memory_precision", "macro_f1"} <= set(systems["triage"])
    assert systems["tfidf_linear_svc"]["llm_calls_avoided"] is None
    assert 0 <= result["decision"]["category"]["ece"] <= 1
    ceiling = result["hindsight"]  # one bar chosen after the fact on the same probabilities
    assert 0 <= ceiling["answered_share"] <= 1
    assert ceiling["answered"] == 0 or ceiling["precision"] >= result["target_precision"]
    cli.main(["evaluate", str(SAMPLE), *COLUMNS, "--no-servicenow", "--nightly", "150", "--audit-rate", "0.2"])
    table = capsys.readouterr().out
    assert "| triage: calibrated decision + local classifier" in table and "GPTCache-style" in table
    assert "today's fixed policy" in table and "ServiceNow-style" not in table and "| category " in table
    assert "refit every 150 on its memory, audit 20%" in table and "refit every 150 on its memory, all known" in table
    assert "nightly_audited" not in result["systems"]  # production's loop only when asked for


def test_calibrate_stores_the_fitted_calibration(chroma_env, capsys):
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    code, result = run(capsys, "calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "0.9", "--tenant", tenant)
    assert code == 0 and result["stored"] and result["tenant"] == tenant
    stored = bootstrap.calibrations().get(tenant)
    assert stored is not None and stored.target == 0.9 and stored.fitted_on == 400
    assert set(stored.labels) == {"category"}
    category = stored.labels["category"]
    assert category.model["fitted_on"] == 400 and stored.source == str(SAMPLE)
    bars = {value: bar for value, bar in category.thresholds.items() if value != "*"}
    assert any(bar["threshold"] is not None for bar in bars.values())
    calibrations = bootstrap.calibrations()
    for value, bar in bars.items():
        assert "record" not in bar  # kept apart, read only when a bar is tightened
        record = calibrations.fitted_record(tenant, "category", value, stored.fitted_at)
        assert 0 < len(record) <= 2000 and record == sorted(record, key=lambda pair: -pair[0])
        assert result["bars"]["category"][value]["threshold"] == bar["threshold"]
        if bar["threshold"] is not None:  # each bar keeps the target on the history it was fitted on
            assert bar["correct"] >= 0.9 * bar["answered"] and bar["source"] in {"own", "pooled"}
    other = f"{tenant}-strict"
    code, result = run(
        capsys, "calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "0.999", "--tenant", other, "--no-store"
    )
    assert code == 0 and not result["stored"] and bootstrap.calibrations().get(other) is None
    assert all(bar["threshold"] is None for bar in result["bars"]["category"].values())  # too little evidence
    assert cli.main(["calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "1.01", "--no-store"]) == 1
    assert "--target-precision must be between 0 and 1" in capsys.readouterr().err


def test_calibrate_from_memory_fits_on_what_the_tenant_s_memory_holds(chroma_env, capsys, embedder):
    from triage.domain import Labels, LabelSource, MemoryEntry

    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    assert run(capsys, "backfill", str(SAMPLE), *COLUMNS, "--tenant", tenant)[1]["loaded"] == 400
    # Three memory answers: their labels are the memory's own guess, never history to fit on.
    guesses = [
        MemoryEntry(f"guess-{i}", tenant, (), f"printer jam number {i}", Labels("Hardware", "Medium", "-"),
                    LabelSource.MEMORY)
        for i in range(3)
    ]  # fmt: skip
    # And one the classifier of record labelled before the taxonomy lost its category.
    retired = MemoryEntry("retired", tenant, (), "the fax is down", Labels("Fax", "Medium", "-"), LabelSource.MODEL)
    bootstrap.memory_records().put([*guesses, retired], model=embedder.name)
    code, result = run(capsys, "calibrate", "--from-memory", "--tenant", tenant, "--target-precision", "0.9")
    assert code == 0 and result["stored"] and (result["tickets"], result["left_out"]) == (401, 3)
    # Backfill filled the priority and the group in from the taxonomy: both follow from the category.
    assert result["labels"] == ["category"]
    stored = bootstrap.calibrations().get(tenant)
    assert stored is not None and stored.fitted_on == 401 and stored.source == f"memory of tenant {tenant}"
    bars = stored.labels["category"].thresholds
    assert any(bar["threshold"] is not None for value, bar in bars.items() if value != "*")
    strict = ["--taxonomy", "--target-precision", "0.9", "--no-store"]
    cli.main(["calibrate", "--from-memory", "--tenant", tenant, *strict])
    assert f"memory of tenant {tenant}: 400 tickets (4 memory entries left out" in capsys.readouterr().out

    # The scheduled refit: every tenant the memory holds, one with too little history skipped.
    small = MemoryEntry("mouse", f"{tenant}-small", (), "my mouse is broken", Labels("Hardware", "Low", "-"),
                        LabelSource.HUMAN)  # fmt: skip
    bootstrap.memory_records().put([small], model=embedder.name)
    code, result = run(capsys, "calibrate", "--from-memory", "--all-tenants", "--target-precision", "0.9", "--no-store")
    assert code == 0 and set(result["tenants"]) == {tenant} and set(result["skipped"]) == {f"{tenant}-small"}
    assert result["tenants"][tenant]["tickets"] == 401 and "holds 1 labelled entries" in result["skipped"][small.tenant]
    assert cli.main(["calibrate", "--all-tenants", "--no-store"]) == 1
    assert "--all-tenants goes with --from-memory" in capsys.readouterr().err

    # Either a file or the memory, and a memory with history in it.
    assert cli.main(["calibrate", str(SAMPLE), *COLUMNS, "--from-memory", "--no-store"]) == 1
    assert "not both" in capsys.readouterr().err
    assert cli.main(["calibrate", "--no-store"]) == 1
    assert "or --from-memory" in capsys.readouterr().err
    assert cli.main(["calibrate", "--from-memory", "--tenant", f"{tenant}-empty", "--no-store"]) == 1
    assert "holds 0 labelled entries" in capsys.readouterr().err


def test_calibrate_plots_the_curve_with_the_chosen_point(chroma_env, capsys, tmp_path):
    plot = tmp_path / "curve.png"
    arguments = ["calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "0.9", "--no-store", "--plot", str(plot)]
    code = cli.main(arguments)
    table = capsys.readouterr().out
    assert code == 0 and f"plot: {plot}" in table
    assert "| category " in table and "| target |" in table and "Wilson 95%" in table and "not stored" in table
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (960, 600)  # 8 x 5 inches at 120 dpi


def test_a_missing_file_is_a_usage_error(capsys):
    assert cli.main(["evaluate", "nowhere.csv", *COLUMNS]) == 2
    assert "no such file" in capsys.readouterr().err


def test_an_audit_rate_outside_0_to_1_is_refused_before_any_work(capsys):
    assert cli.main(["evaluate", str(SAMPLE), *COLUMNS, "--nightly", "100", "--audit-rate", "1.5"]) == 1
    assert "--audit-rate between 0 and 1" in capsys.readouterr().err


def test_reconcile_failed_and_replay_commands(emulator_env, capsys, monkeypatch):
    from google.cloud import firestore, pubsub_v1

    from triage import domain
    from triage.adapters.firestore import FirestoreTicketStore
    from triage.domain import Submission
    from triage.service import ingest

    project = emulator_env.config.project
    topic = f"tickets-{uuid.uuid4().hex[:8]}"
    pubsub_v1.PublisherClient().create_topic(name=f"projects/{project}/topics/{topic}")
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TICKETS_TOPIC", topic)
    monkeypatch.setenv("TICKETS_COLLECTION", collection)
    store = FirestoreTicketStore(firestore.Client(project=project), collection)

    class Quiet:
        def publish(self, ticket_id, kind):
            return "1"

    from tests.fakes import FakeClock

    clock = FakeClock()
    stuck = ingest(Submission(title="VPN down"), store=store, publisher=Quiet(), clock=clock).ticket.ticket_id
    broken = ingest(Submission(title="Printer"), store=store, publisher=Quiet(), clock=clock).ticket.ticket_id
    store.update(broken, lambda t: domain.ticket.fail(t, "InvalidModelOutput: not JSON", now=clock()))

    code, result = run(capsys, "reconcile", "--older-than", "60")
    assert code == 0 and result["ticket_ids"]["republished"] == [stuck]
    assert store.get(stuck).republished == 1
    code, result = run(capsys, "failed")
    assert [t["ticket_id"] for t in result["tickets"]] == [broken]
    assert cli.main(["replay"]) == 1  # nothing named
    capsys.readouterr()
    code, result = run(capsys, "replay", "--all-failed")
    assert result == {"replayed": [broken]}
    assert store.get(broken).status.value == "Pending"
