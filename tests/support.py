"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from triage.adapters.chroma import ChromaIndex


def connect_chroma(
    url: str, collection: str, embedding_model: str = "test-model", version: str = "1", **options
) -> ChromaIndex:
    parts = urlsplit(url)
    return ChromaIndex.connect(
        host=parts.hostname,
        port=parts.port,
        ssl=False,
        token=None,
        tenant="default_tenant",
        database="default_database",
        collection=collection,
        embedding_model=embedding_model,
        model_version=version,
        **options,
    )


def durable_memory(infrastructure, prefix: str | None = None, embedding_model: str = "test-model", version: str = "1"):
    """DurableMemory on the Firestore emulator and the Chroma server, in collections of its own."""
    from google.cloud import firestore

    from triage.adapters.durable_memory import DurableMemory
    from triage.adapters.firestore_memory import FirestoreMemoryRecords

    name = prefix or f"memory-{uuid.uuid4().hex[:8]}"
    records = FirestoreMemoryRecords(firestore.Client(project=infrastructure.config.project), name)
    return DurableMemory(records, connect_chroma(infrastructure.chroma_url, name, embedding_model, version))
