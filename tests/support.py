"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

from urllib.parse import urlsplit

from triage.adapters.chroma import ChromaMemory


def connect_chroma(
    url: str, collection: str, embedding_model: str = "test-model", version: str = "1", **options
) -> ChromaMemory:
    parts = urlsplit(url)
    return ChromaMemory.connect(
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
