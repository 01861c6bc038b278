"""ChromaMemory against a real Chroma server (through chromadb-client)."""

from __future__ import annotations

import math
import uuid

import pytest

from emulators.stack import free_port
from tests.support import connect_chroma
from triage.adapters.chroma import ChromaMemory
from triage.domain import Labels, LabelSource, MemoryEntry
from triage.errors import ConfigurationError, MemoryUnavailable

SOFTWARE = Labels("Software", "Medium", "Application Support")
ACCESS = Labels("Access", "High", "Identity & Access Management")


@pytest.fixture
def memory(infrastructure) -> ChromaMemory:
    return connect_chroma(infrastructure.chroma_url, f"tickets-{uuid.uuid4().hex[:8]}")


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def entry(ticket_id, vector, labels=SOFTWARE, tenant="acme", source=LabelSource.MODEL, derived_from=None):
    return MemoryEntry(ticket_id, tenant, vector, f"text of {ticket_id}", labels, source, derived_from)


def test_nearest_ranks_by_cosine_similarity_within_the_tenant(memory: ChromaMemory):
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


def test_remember_is_an_upsert(memory: ChromaMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("a", unit(1, 0, 0), ACCESS))
    (only,) = memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)
    assert only.labels == ACCESS


def test_relabel_updates_the_entry_and_those_answered_from_it(memory: ChromaMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    memory.remember(entry("copy", unit(1, 0.1, 0), source=LabelSource.MEMORY, derived_from="a"))
    memory.remember(entry("checked", unit(1, 0.2, 0), source=LabelSource.HUMAN, derived_from="a"))
    assert memory.relabel("a", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    found = {n.ticket_id: n for n in memory.nearest(unit(1, 0, 0), tenant="acme", limit=10)}
    assert found["a"].labels == ACCESS and found["a"].label_source is LabelSource.HUMAN
    assert found["copy"].labels == ACCESS and found["copy"].label_source is LabelSource.MEMORY
    assert found["checked"].labels == SOFTWARE  # a human verified it on its own


def test_relabel_never_crosses_tenants_or_invents_entries(memory: ChromaMemory):
    memory.remember(entry("a", unit(1, 0, 0)))
    assert not memory.relabel("a", tenant="globex", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert not memory.relabel("missing", tenant="acme", labels=ACCESS, label_source=LabelSource.HUMAN)
    assert memory.nearest(unit(1, 0, 0), tenant="acme", limit=1)[0].labels == SOFTWARE


def test_a_memory_built_by_another_model_is_refused(infrastructure):
    name = f"tickets-{uuid.uuid4().hex[:8]}"
    connect_chroma(infrastructure.chroma_url, name, "model-a").remember(entry("a", unit(1, 0)))
    with pytest.raises(ConfigurationError, match=r"model-a.*model-b.*CHROMA_COLLECTION"):
        connect_chroma(infrastructure.chroma_url, name, "model-b").nearest(unit(1, 0), tenant="acme", limit=1)


def test_an_unreachable_chroma_is_memory_unavailable(infrastructure):
    down = connect_chroma(f"http://127.0.0.1:{free_port()}", "tickets")
    with pytest.raises(MemoryUnavailable):
        down.nearest(unit(1, 0), tenant="acme", limit=1)
