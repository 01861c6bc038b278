"""The ``triage`` command line against a real Chroma server and the real embedding model."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import connect_chroma
from triage import bootstrap, cli

DATA = Path(__file__).parents[1] / "data"
SAMPLE = DATA / "it_tickets_sample.csv"
COLUMNS = ["--title-column", "Document", "--category-column", "Topic_group"]


@pytest.fixture
def chroma_env(infrastructure, embedder, monkeypatch):
    chroma = urlsplit(infrastructure.chroma_url)
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CHROMA_HOST", chroma.hostname)
    monkeypatch.setenv("CHROMA_PORT", str(chroma.port))
    monkeypatch.setenv("CHROMA_COLLECTION", collection)
    monkeypatch.setenv("TAXONOMY_FILE", str(DATA / "it_service_taxonomy.json"))
    bootstrap.override(embedder=embedder)
    return infrastructure.chroma_url, collection


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
    url, collection = chroma_env
    code, report = run(capsys, "backfill", str(first_rows(tmp_path, 150)), *COLUMNS)
    assert code == 0 and (report["loaded"], report["skipped"], report["rejected"]) == (150, 0, 0)
    # As if the first run had stopped after 150 rows: the full run loads only the rest.
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS, "--chunk-size", "64")
    assert (report["loaded"], report["skipped"]) == (250, 150)
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert (report["loaded"], report["skipped"]) == (0, 400)
    memory = connect_chroma(url, collection, embedder.name, embedder.version)
    assert memory.count() == 400
    query = embedder.embed(["unable to access shared folder"])[0]
    assert memory.nearest(query, tenant="default", limit=3)[0].label_source.value == "imported"


def test_backfill_rejects_labels_outside_the_taxonomy_with_reasons(chroma_env, capsys, monkeypatch):
    monkeypatch.delenv("TAXONOMY_FILE")  # the default IT taxonomy has Access, Hardware, Purchase only
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert code == 0
    assert report["loaded"] + report["rejected"] == 400
    assert "category 'HR Support' is not in the taxonomy" in report["rejected_reasons"]


def test_reindex_rebuilds_a_memory_built_by_another_model(chroma_env, capsys, embedder):
    url, collection = chroma_env
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
    assert "run `triage reindex`" in capsys.readouterr().err
    code, result = run(capsys, "reindex")
    assert result == {"entries": 400, "model": "minilm-renamed@2", "seconds": result["seconds"]}
    assert connect_chroma(url, collection, "minilm-renamed", "2").count() == 400
    code, report = run(capsys, "backfill", str(SAMPLE), *COLUMNS)
    assert (report["loaded"], report["skipped"]) == (0, 400)


def test_evaluate_prints_one_table_of_figures(chroma_env, capsys):
    code, result = run(capsys, "evaluate", str(SAMPLE), *COLUMNS)
    assert code == 0
    assert result["tickets"] == 400 and result["held_out"] == 80
    systems = result["systems"]
    assert set(systems) == {"triage", "fixed_1nn_0.80", "tfidf_linear_svc"}
    for name, figures in systems.items():
        assert 0.3 < figures["accuracy"] <= 1 and 0 < figures["macro_f1"] <= 1, name
    assert 0 <= systems["triage"]["llm_calls_avoided"] <= 1
    assert systems["tfidf_linear_svc"]["llm_calls_avoided"] is None
    cli.main(["evaluate", str(SAMPLE), *COLUMNS])
    table = capsys.readouterr().out
    assert "| triage: memory policy + local classifier" in table and "GPTCache-style" in table


def test_calibrate_writes_the_chosen_settings(chroma_env, capsys, tmp_path):
    output = tmp_path / "policy.env"
    code, result = run(capsys, "calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "0.9", "--output", str(output))
    assert code == 0
    assert result["chosen"]["precision"] >= 0.9
    assert result["curve"] == sorted(result["curve"], key=lambda p: p["answered"])
    written = dict(line.split("=", 1) for line in output.read_text().splitlines() if not line.startswith("#"))
    assert float(written["MEMORY_AGREEMENT_SIMILARITY"]) == result["chosen"]["settings"]["MEMORY_AGREEMENT_SIMILARITY"]
    impossible = tmp_path / "none.env"
    code, result = run(
        capsys, "calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "1.01", "--output", str(impossible)
    )
    assert result["chosen"] is None and not impossible.exists()


def test_calibrate_plots_the_curve_with_the_chosen_point(chroma_env, capsys, tmp_path):
    plot = tmp_path / "curve.png"
    code, result = run(
        capsys, "calibrate", str(SAMPLE), *COLUMNS, "--target-precision", "0.9",
        "--output", str(tmp_path / "policy.env"), "--plot", str(plot),
    )  # fmt: skip
    assert code == 0 and result["plot"] == str(plot)
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (960, 600)  # 8 x 5 inches at 120 dpi


def test_a_missing_file_is_a_usage_error(capsys):
    assert cli.main(["evaluate", "nowhere.csv", *COLUMNS]) == 2
    assert "no such file" in capsys.readouterr().err


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
