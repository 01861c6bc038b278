"""The memory's contract, run against the in-memory fake the unit tests use and against
ChromaMemory on a real Chroma server (through chromadb-client): the same cases, so the fake
cannot drift from what it stands for. Cases about Chroma itself (the model a collection was
built with, reindexing, an unreachable server, ID tokens) run on the real one only."""

from __future__ import annotations

import math
import uuid

import pytest

from emulators.stack import free_port
from tests.fakes import InMemoryMemory
from tests.support import connect_chroma
from triage.adapters.chroma import ChromaMemory
from triage.domain import Labels, LabelSource, MemoryEntry
from triage.errors import ConfigurationError, MemoryUnavailable

SOFTWARE = Labels("Software", "Medium", "Application Support")
ACCESS = Labels("Access", "High", "Identity & Access Management")


@pytest.fixture(params=["in-memory fake", "Chroma server"])
def memory(request) -> ChromaMemory | InMemoryMemory:
    if request.param == "in-memory fake":
        return InMemoryMemory()
    infrastructure = request.getfixturevalue("infrastructure")
    return connect_chroma(infrastructure.chroma_url, f"tickets-{uuid.uuid4().hex[:8]}")


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def entry(ticket_id, vector, labels=SOFTWARE, tenant="acme", source=LabelSource.MODEL, derived_from=None):
    return MemoryEntry(ticket_id, tenant, vector, f"text of {ticket_id}", labels, source, derived_from)


def test_nearest_ranks_by_cosine_similarity_within_the_tenant(memory: ChromaMemory | InMemoryMemory):
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


def test_remember_is_an_upsert(memory: ChromaMemory | InMemoryMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("a", unit(1, 0, 0), ACCESS))
    (only,) = memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)
    assert only.labels == ACCESS


def test_relabel_updates_the_entry_and_those_answered_from_it(memory: ChromaMemory | InMemoryMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("copy", unit(1, 0.1, 0), source=LabelSource.MEMORY, derived_from="a"))
    memory.remember(entry("checked", unit(1, 0.2, 0), source=LabelSource.HUMAN, derived_from="a"))
    assert memory.relabel("a", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    found = {n.ticket_id: n for n in memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)}
    assert found["a"].labels == ACCESS and found["a"].label_source is LabelSource.HUMAN
    assert found["copy"].labels == ACCESS and found["copy"].label_source is LabelSource.MEMORY
    assert found["checked"].labels == SOFTWARE  # a human verified it on its own


def test_relabel_never_crosses_tenants_or_invents_entries(memory: ChromaMemory | InMemoryMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    assert not memory.relabel("a", tenant="globex", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert not memory.relabel("missing", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert memory.nearest(unit(1, 0, 0), tenant="acme", limit=1)[0].labels == SOFTWARE


@pytest.mark.parametrize(("model", "version"), [("model-b", "1"), ("model-a", "2")])
def test_a_memory_built_by_another_model_or_version_is_refused(infrastructure, model, version):
    name = f"tickets-{uuid.uuid4().hex[:8]}"
    connect_chroma(infrastructure.chroma_url, name, "model-a", "1").remember(entry("a", unit(1, 0)))
    other = connect_chroma(infrastructure.chroma_url, name, model, version)
    with pytest.raises(ConfigurationError, match=rf"model-a@1.*{model}@{version}.*triage reindex"):
        other.nearest(unit(1, 0), tenant="acme", limit=1)


def test_known_and_entries(memory: ChromaMemory | InMemoryMemory):
    memory.remember(*(entry(f"t{i}", unit(1, i, 0)) for i in range(3)), entry("g", unit(0, 1, 0), tenant="globex"))
    assert memory.known(["t0", "t2", "nope", "g"]) == {"t0", "t2", "g"}
    listed = sorted(memory.entries("acme"), key=lambda e: e.ticket_id)
    assert [e.ticket_id for e in listed] == ["t0", "t1", "t2"]
    assert listed[0].text == "text of t0" and listed[0].labels == SOFTWARE and listed[0].embedding == ()


def test_reindex_rebuilds_the_memory_for_the_configured_model(infrastructure):
    name = f"tickets-{uuid.uuid4().hex[:8]}"
    old = connect_chroma(infrastructure.chroma_url, name, "old-model")
    old.remember(
        entry("a", unit(1, 0, 0)), entry("b", unit(0, 1, 0), ACCESS, source=LabelSource.HUMAN, derived_from="a")
    )
    new = connect_chroma(infrastructure.chroma_url, name, "new-model", "7")
    with pytest.raises(ConfigurationError):
        new.count()

    class TextLength:
        name, version = "new-model", "7"

        def embed(self, texts):
            return [unit(len(t), 1.0, 0.0) for t in texts]

    assert new.reindex(TextLength(), batch_size=1) == 2
    assert new.count() == 2
    found = {n.ticket_id: n for n in new.nearest(unit(len("text of a"), 1.0, 0.0), tenant="acme", limit=5)}
    assert found["a"].similarity == pytest.approx(1.0)
    assert found["b"].labels == ACCESS and found["b"].label_source is LabelSource.HUMAN
    assert found["b"].source_ticket_id == "a"
    with pytest.raises(ConfigurationError):
        connect_chroma(infrastructure.chroma_url, name, "old-model").count()


def test_an_unreachable_chroma_is_memory_unavailable(infrastructure):
    down = connect_chroma(f"http://127.0.0.1:{free_port()}", "tickets")
    with pytest.raises(MemoryUnavailable):
        down.nearest(unit(1, 0), tenant="acme", limit=1)


def test_google_id_token_auth_sends_a_fresh_token_before_the_old_one_expires(infrastructure):
    """CHROMA_AUTH=google_id_token: the Chroma service on Cloud Run lets only our service accounts in."""
    audiences, now = [], [0.0]

    def id_token(audience: str) -> str:
        audiences.append(audience)
        return f"token-{len(audiences)}"

    memory = connect_chroma(
        infrastructure.chroma_url,
        f"tickets-{uuid.uuid4().hex[:8]}",
        auth="google_id_token",
        audience="https://chroma.example.run.app",
        id_token=id_token,
        clock=lambda: now[0],
    )
    memory.remember(entry("a", unit(1, 0)))
    assert [n.ticket_id for n in memory.nearest(unit(1, 0), tenant="acme", limit=1)] == ["a"]
    assert audiences == ["https://chroma.example.run.app"]  # one token for every call within its life
    now[0] += 46 * 60
    assert [n.ticket_id for n in memory.nearest(unit(1, 0), tenant="acme", limit=1)] == ["a"]
    assert len(audiences) == 2
