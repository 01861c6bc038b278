"""The memory's contract, run against the in-memory fake the unit tests use and against the
real memory: DurableMemory, its record on the Firestore emulator and its index on a Chroma
server (through chromadb-client). The same cases, so the fake cannot drift from what it
stands for. Cases about Chroma itself (the model a collection was built with, an unreachable
server, ID tokens) and about the record (a lost index, the rebuild) run on the real one only."""

from __future__ import annotations

import dataclasses
import math
import uuid

import pytest

from emulators.stack import free_port
from tests.fakes import InMemoryMemory
from tests.support import connect_chroma, durable_memory
from triage.adapters.durable_memory import DurableMemory
from triage.domain import Labels, LabelSource, MemoryEntry
from triage.errors import ConfigurationError, MemoryIndexMissing, MemoryUnavailable
from triage.offline.rebuild import import_collection, rebuild

SOFTWARE = Labels("Software", "Medium", "Application Support")
ACCESS = Labels("Access", "High", "Identity & Access Management")


Memory = DurableMemory | InMemoryMemory


@pytest.fixture(params=["in-memory fake", "Firestore and Chroma"])
def memory(request) -> Memory:
    if request.param == "in-memory fake":
        return InMemoryMemory()
    return durable_memory(request.getfixturevalue("emulator_env"))


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def entry(ticket_id, vector, labels=SOFTWARE, tenant="acme", source=LabelSource.MODEL, derived_from=None):
    return MemoryEntry(ticket_id, tenant, vector, f"text of {ticket_id}", labels, source, derived_from)


def test_nearest_ranks_by_cosine_similarity_within_the_tenant(memory: Memory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("b", unit(1, 1, 0), ACCESS, source=LabelSource.HUMAN))
    memory.remember(entry("c", unit(0, 0, 1)))
    memory.remember(entry("other-tenant", unit(1, 0, 0), tenant="globex"))
    found = memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)
    assert [n.ticket_id for n in found] == ["a", "b", "c"]
    assert [round(n.similarity, 3) for n in found] == [1.0, 0.707, 0.0]
    assert found[1].labels == ACCESS and found[1].label_source is LabelSource.HUMAN
    assert found[0].text == "text of a"
    assert [n.ticket_id for n in memory.nearest(unit(1, 0, 0), tenant="globex", limit=10)] == ["other-tenant"]
    assert memory.nearest(unit(1, 0, 0), tenant="nobody", limit=10) == []


def test_remember_is_an_upsert(memory: Memory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("a", unit(1, 0, 0), ACCESS))
    (only,) = memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)
    assert only.labels == ACCESS


def test_relabel_updates_the_entry_and_those_answered_from_it(memory: Memory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("copy", unit(1, 0.1, 0), source=LabelSource.MEMORY, derived_from="a"))
    memory.remember(entry("checked", unit(1, 0.2, 0), source=LabelSource.HUMAN, derived_from="a"))
    assert memory.relabel("a", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    found = {n.ticket_id: n for n in memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)}
    assert found["a"].labels == ACCESS and found["a"].label_source is LabelSource.HUMAN
    assert found["copy"].labels == ACCESS and found["copy"].label_source is LabelSource.MEMORY
    assert found["checked"].labels == SOFTWARE  # a human verified it on its own


def test_a_guarded_relabel_changes_only_entries_from_the_sources_it_names(memory: Memory):
    only_guesses = frozenset({LabelSource.MEMORY})
    memory.remember(entry("guess", unit(1, 0, 0), source=LabelSource.MEMORY))
    memory.remember(entry("reviewed", unit(0, 1, 0), source=LabelSource.HUMAN))
    assert memory.relabel("guess", tenant="acme", labels=ACCESS, label_source=LabelSource.MODEL, over=only_guesses)
    assert not memory.relabel(
        "reviewed", tenant="acme", labels=ACCESS, label_source=LabelSource.MODEL, over=only_guesses
    )
    found = {n.ticket_id: n for n in memory.nearest(unit(1, 1, 0), tenant="acme", limit=10)}
    assert (found["guess"].labels, found["guess"].label_source) == (ACCESS, LabelSource.MODEL)
    assert (found["reviewed"].labels, found["reviewed"].label_source) == (SOFTWARE, LabelSource.HUMAN)
    if isinstance(memory, DurableMemory):  # the record, which the index is rebuilt from, agrees
        on_record = {e.ticket_id: e for _, e in memory.records.scan("acme")}
        assert on_record["guess"].label_source is LabelSource.MODEL
        assert on_record["reviewed"].label_source is LabelSource.HUMAN


def test_relabel_never_crosses_tenants_or_invents_entries(memory: Memory):
    memory.remember(entry("a", unit(1, 0, 0)))
    assert not memory.relabel("a", tenant="globex", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert not memory.relabel("missing", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert memory.nearest(unit(1, 0, 0), tenant="acme", limit=1)[0].labels == SOFTWARE


def test_known_and_entries(memory: Memory):
    memory.remember(*(entry(f"t{i}", unit(1, i, 0)) for i in range(3)), entry("g", unit(0, 1, 0), tenant="globex"))
    assert memory.known(["t0", "t2", "nope", "g"], tenant="acme") == {"t0", "t2"}
    assert memory.known(["g"], tenant="globex") == {"g"}
    listed = sorted(memory.entries("acme"), key=lambda e: e.ticket_id)
    assert [e.ticket_id for e in listed] == ["t0", "t1", "t2"]
    assert listed[0].text == "text of t0" and listed[0].labels == SOFTWARE and listed[0].embedding == ()


def test_health_counts_each_tenant(memory: Memory):
    memory.remember(entry("a", unit(1, 0)), entry("b", unit(0, 1)), entry("g", unit(1, 1), tenant="globex"))
    health = memory.health()
    assert health["acme"] == {"recorded": 2, "indexed": 2, "index_missing": False}
    assert health["globex"]["recorded"] == 1


# --------------------------------------------------------------------------- the real memory only


@pytest.mark.parametrize(("model", "version"), [("model-b", "1"), ("model-a", "2")])
def test_a_memory_built_by_another_model_or_version_is_refused(infrastructure, model, version):
    name = f"tickets-{uuid.uuid4().hex[:8]}"
    connect_chroma(infrastructure.chroma_url, name, "model-a", "1").upsert("acme", [entry("a", unit(1, 0))])
    other = connect_chroma(infrastructure.chroma_url, name, model, version)
    with pytest.raises(ConfigurationError, match=rf"model-a@1.*{model}@{version}.*triage rebuild"):
        other.nearest(unit(1, 0), tenant="acme", limit=1)


def test_a_guarded_relabel_writes_only_over_the_entry_it_read(emulator_env, monkeypatch):
    """The record's guarded write carries the update time it read: an entry changed since (here,
    every time, by a precondition on a time long past) is read again, never overwritten."""
    from datetime import UTC, datetime

    from triage.errors import StoreUnavailable

    memory = durable_memory(emulator_env)
    memory.remember(entry("guess", unit(1, 0), source=LabelSource.MEMORY))
    client = memory.records._client
    stale = client.write_option(last_update_time=datetime(2020, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(client, "write_option", lambda **_: stale)
    with pytest.raises(StoreUnavailable, match="kept changing"):
        memory.relabel("guess", tenant="acme", labels=ACCESS, label_source=LabelSource.MODEL,
                       over=frozenset({LabelSource.MEMORY}))  # fmt: skip
    (kept,) = [e for _, e in memory.records.scan("acme")]
    assert (kept.labels, kept.label_source) == (SOFTWARE, LabelSource.MEMORY)


def test_each_tenant_has_a_collection_of_its_own(emulator_env):
    memory = durable_memory(emulator_env)
    memory.remember(entry("a", unit(1, 0)), entry("b", unit(1, 0), tenant="Globex Corp."))
    assert memory.index.tenants() == ["Globex Corp.", "acme"]
    assert memory.index.count("acme") == 1 and memory.index.count("Globex Corp.") == 1
    query = memory.index.collection("acme").query(query_embeddings=[unit(1, 0)], n_results=5)
    assert query["ids"] == [["a"]]  # an unfiltered query of the tenant's own collection


class TextLength:
    """An embedder whose vector is the text's length: enough to tell entries apart."""

    name, version = "new-model", "7"

    def embed(self, texts):
        return [unit(len(t), 1.0, 0.0) for t in texts]


def test_a_lost_index_answers_nothing_says_why_and_is_rebuilt_from_the_record(emulator_env):
    memory = durable_memory(emulator_env)
    memory.remember(
        entry("a", unit(1, 0, 0)), entry("b", unit(0, 1, 0), ACCESS, source=LabelSource.HUMAN, derived_from="a")
    )
    # Chroma loses its data: the tenant's collection is gone, its entries still on record.
    memory.index.named(memory.index.collection("acme").name).delete(ids=["a", "b"])  # emptied...
    memory = durable_memory(emulator_env, memory.index.prefix)  # (a worker that starts now)
    with pytest.raises(MemoryIndexMissing, match="triage rebuild --tenant acme"):
        memory.nearest(unit(1, 0, 0), tenant="acme", limit=5)
    assert memory.health()["acme"] == {"recorded": 2, "indexed": 0, "index_missing": True}
    memory.index._connect().delete_collection(memory.index.collection("acme").name)  # ...or gone
    memory = durable_memory(emulator_env, memory.index.prefix)
    with pytest.raises(MemoryIndexMissing):
        memory.nearest(unit(1, 0, 0), tenant="acme", limit=5)
    # A new entry is still recorded, and not indexed into an empty, partial index.
    memory.remember(entry("c", unit(0, 0, 1)))
    assert memory.index.collection("acme") is None and memory.records.count("acme") == 3
    rebuilt = connect_chroma(emulator_env.chroma_url, memory.index.prefix, "new-model", "7")  # a new model, too
    report = rebuild(records=memory.records, index=rebuilt, embedder=TextLength(), batch_size=2)
    assert report.entries == {"acme": 3}
    memory = durable_memory(emulator_env, memory.index.prefix, "new-model", "7")
    found = {n.ticket_id: n for n in memory.nearest(unit(len("text of a"), 1.0, 0.0), tenant="acme", limit=5)}
    assert set(found) == {"a", "b", "c"} and found["a"].similarity == pytest.approx(1.0)
    assert found["b"].labels == ACCESS and found["b"].label_source is LabelSource.HUMAN
    assert found["b"].source_ticket_id == "a"


def test_a_rebuild_resumes_and_swaps_only_when_complete(emulator_env):
    memory = durable_memory(emulator_env)
    memory.remember(*(entry(f"t{i}", unit(1, i, 0)) for i in range(5)))

    class FailsOnce(TextLength):
        calls = 0

        def embed(self, texts):
            FailsOnce.calls += 1
            if FailsOnce.calls == 2:
                raise MemoryUnavailable("the server went away mid-rebuild")
            return super().embed(texts)

    rebuilt = connect_chroma(emulator_env.chroma_url, memory.index.prefix, "new-model", "7")
    with pytest.raises(MemoryUnavailable):
        rebuild(records=memory.records, index=rebuilt, embedder=FailsOnce(), batch_size=2)
    live = memory.index.collection("acme")
    assert live.count() == 5 and live.metadata["embedding_model"] == "test-model"  # untouched
    assert rebuilt.staging("acme").count() == 2  # what the first run staged stays
    report = rebuild(records=memory.records, index=rebuilt, embedder=TextLength(), batch_size=2)
    assert report.embedded == 3 and report.entries == {"acme": 5}  # resumed, not started over


def test_a_rebuild_against_an_unreachable_firestore_fails_clearly_and_leaves_the_index(emulator_env, monkeypatch):
    from google.cloud import firestore

    from triage.adapters.firestore_memory import FirestoreMemoryRecords
    from triage.errors import StoreUnavailable

    memory = durable_memory(emulator_env)
    memory.remember(entry("a", unit(1, 0)))
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    unreachable = FirestoreMemoryRecords(firestore.Client(project="triage-test"), "x", timeout_seconds=1)
    rebuilt = connect_chroma(emulator_env.chroma_url, memory.index.prefix, "new-model", "7")
    with pytest.raises(StoreUnavailable, match="Firestore"):
        rebuild(records=unreachable, index=rebuilt, embedder=TextLength(), tenants=["acme"])
    assert memory.index.count("acme") == 1


def test_the_first_versions_single_collection_is_put_on_record(emulator_env):
    memory = durable_memory(emulator_env)
    client = memory.index._connect()
    legacy = client.create_collection(f"legacy-{uuid.uuid4().hex[:6]}", metadata={"hnsw:space": "cosine"})
    legacy.upsert(
        ids=["a", "b"],
        embeddings=[unit(1, 0), unit(0, 1)],
        documents=["vpn down", "printer jam"],
        metadatas=[
            {"tenant": "acme", **SOFTWARE.as_dict(), "label_source": "imported"},
            {"tenant": "globex", **ACCESS.as_dict(), "label_source": "human", "source_ticket_id": "z"},
        ],
    )
    assert import_collection(legacy, memory.records, model=memory.model) == 2
    assert memory.records.tenants() == ["acme", "globex"]
    assert memory.records.get("b", tenant="globex").label_source is LabelSource.HUMAN


def test_an_unreachable_chroma_is_memory_unavailable():
    down = connect_chroma(f"http://127.0.0.1:{free_port()}", "tickets")
    with pytest.raises(MemoryUnavailable):
        down.nearest(unit(1, 0), tenant="acme", limit=1)


def test_google_id_token_auth_sends_a_fresh_token_before_the_old_one_expires(infrastructure):
    """CHROMA_AUTH=google_id_token: a Chroma behind IAM lets only our service accounts in."""
    audiences, now = [], [0.0]

    def id_token(audience: str) -> str:
        audiences.append(audience)
        return f"token-{len(audiences)}"

    index = connect_chroma(
        infrastructure.chroma_url,
        f"tickets-{uuid.uuid4().hex[:8]}",
        auth="google_id_token",
        audience="https://chroma.example.run.app",
        id_token=id_token,
        clock=lambda: now[0],
    )
    index.upsert("acme", [entry("a", unit(1, 0))])
    assert [n.ticket_id for n in index.nearest(unit(1, 0), tenant="acme", limit=1)] == ["a"]
    assert audiences == ["https://chroma.example.run.app"]  # one token for every call within its life
    now[0] += 46 * 60
    assert [n.ticket_id for n in index.nearest(unit(1, 0), tenant="acme", limit=1)] == ["a"]
    assert len(audiences) == 2


def test_the_record_is_scanned_page_by_page_and_resumes_after_a_document(emulator_env, monkeypatch):
    from triage.adapters import firestore_memory

    monkeypatch.setattr(firestore_memory, "PAGE", 3)  # 8 entries: pages of 3, 3 and 2
    memory = durable_memory(emulator_env)
    memory.remember(*(entry(f"t{i}", unit(1, i / 10)) for i in range(8)))
    memory.remember(dataclasses.replace(entry("other", unit(0, 1)), tenant="globex"))
    scanned = [document for document, _ in memory.records.scan("acme")]
    assert len(scanned) == 8 and len(set(scanned)) == 8
    assert [document for document, _ in memory.records.scan("acme", after=scanned[4])] == scanned[5:]
    assert {e.ticket_id for _, e in memory.records.scan("acme")} == {f"t{i}" for i in range(8)}


def test_entries_recorded_while_a_rebuild_runs_are_indexed_too(emulator_env):
    memory = durable_memory(emulator_env)
    memory.remember(entry("a", unit(1, 0)), entry("b", unit(0, 1)))

    class RecordsDuring(TextLength):
        """The worker records new tickets while the rebuild embeds."""

        calls = 0

        def embed(self, texts):
            RecordsDuring.calls += 1
            if RecordsDuring.calls == 1:
                memory.records.put([entry("during-first-pass", ())], model=memory.model)
            return super().embed(texts)

    rebuilt = connect_chroma(emulator_env.chroma_url, memory.index.prefix, "new-model", "7")
    report = rebuild(records=memory.records, index=rebuilt, embedder=RecordsDuring(), batch_size=1)
    assert report.entries == {"acme": 3}
    assert rebuilt.known(["a", "b", "during-first-pass"], tenant="acme") == {"a", "b", "during-first-pass"}
