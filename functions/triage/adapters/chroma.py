"""Memory on a Chroma server, through chromadb-client.

One collection in cosine space holds one entry per ticket: the embedding we
computed (Chroma never embeds anything itself), the text the classifier saw, the
labels and who gave them. The collection records the embedding model that built
it; a process configured with another model refuses to use it. Every query is
filtered by tenant, so an answer from memory never crosses tenants.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..domain import Labels, LabelSource, MemoryEntry, Neighbour
from ..errors import ConfigurationError, MemoryUnavailable

SPACE = "cosine"


def _labels(metadata: dict[str, Any]) -> Labels:
    return Labels(
        category=str(metadata["category"]),
        priority=str(metadata["priority"]),
        assignment_group=str(metadata["assignment_group"]),
    )


def _metadata(entry: MemoryEntry) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "tenant": entry.tenant,
        **entry.labels.as_dict(),
        "label_source": entry.label_source.value,
    }
    if entry.source_ticket_id:
        metadata["source_ticket_id"] = entry.source_ticket_id
    return metadata


class ChromaMemory:
    def __init__(self, client_factory: Callable[[], Any], collection: str, embedding_model: str):
        self._client_factory = client_factory
        self._collection_name = collection
        self._embedding_model = embedding_model
        self._collection: Any = None
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        *,
        host: str,
        port: int,
        ssl: bool,
        token: str | None,
        tenant: str,
        database: str,
        collection: str,
        embedding_model: str,
    ) -> ChromaMemory:
        def factory() -> Any:
            import chromadb
            from chromadb.config import Settings

            headers = {"x-chroma-token": token} if token else None
            return chromadb.HttpClient(
                host=host,
                port=port,
                ssl=ssl,
                headers=headers,
                tenant=tenant,
                database=database,
                settings=Settings(anonymized_telemetry=False),
            )

        return cls(factory, collection, embedding_model)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ConfigurationError, MemoryUnavailable):
            raise
        except Exception as error:  # chromadb raises ValueError, httpx errors and its own types
            raise MemoryUnavailable(f"Chroma {what} failed: {type(error).__name__}: {error}") from error

    def _open(self) -> Any:
        with self._lock:
            if self._collection is not None:
                return self._collection
            with self._translated("connect"):
                client = self._client_factory()
                collection = client.get_or_create_collection(
                    self._collection_name,
                    metadata={"hnsw:space": SPACE, "embedding_model": self._embedding_model},
                    embedding_function=None,
                )
            built_by = (collection.metadata or {}).get("embedding_model")
            if built_by != self._embedding_model:
                raise ConfigurationError(
                    f"the memory collection {self._collection_name!r} was built with embedding model "
                    f"{built_by!r}, but this process uses {self._embedding_model!r}; rebuild the memory "
                    f"with that model or set CHROMA_COLLECTION to a new collection"
                )
            space = (collection.metadata or {}).get("hnsw:space")
            if space != SPACE:
                raise ConfigurationError(
                    f"the memory collection {self._collection_name!r} uses {space!r} distance, not cosine"
                )
            self._collection = collection
            return collection

    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]:
        collection = self._open()
        with self._translated("query"):
            result = collection.query(
                query_embeddings=[list(embedding)],
                n_results=limit,
                where={"tenant": tenant},
                include=["metadatas", "distances", "documents"],
            )
        neighbours = []
        for ticket_id, distance, metadata, document in zip(
            result["ids"][0], result["distances"][0], result["metadatas"][0], result["documents"][0], strict=True
        ):
            neighbours.append(
                Neighbour(
                    ticket_id=ticket_id,
                    similarity=1.0 - float(distance),
                    labels=_labels(metadata),
                    label_source=LabelSource(metadata["label_source"]),
                    text=document or "",
                    source_ticket_id=metadata.get("source_ticket_id"),
                )
            )
        return neighbours

    def remember(self, entry: MemoryEntry) -> None:
        collection = self._open()
        with self._translated("upsert"):
            collection.upsert(
                ids=[entry.ticket_id],
                embeddings=[list(entry.embedding)],
                documents=[entry.text],
                metadatas=[_metadata(entry)],
            )

    def relabel(self, ticket_id: str, *, tenant: str, labels: Labels, label_source: LabelSource) -> bool:
        collection = self._open()
        new_labels = {**labels.as_dict(), "label_source": label_source.value}
        with self._translated("relabel"):
            found = collection.get(ids=[ticket_id], where={"tenant": tenant}, include=[])
            if not found["ids"]:
                return False
            collection.update(ids=[ticket_id], metadatas=[new_labels])
            # Entries answered from this one inherited its old labels: they follow the
            # correction, unless a human verified them on their own.
            derived = collection.get(
                where={"$and": [{"tenant": tenant}, {"source_ticket_id": ticket_id}]}, include=["metadatas"]
            )
            followers = [
                derived_id
                for derived_id, metadata in zip(derived["ids"], derived["metadatas"], strict=True)
                if metadata.get("label_source") != LabelSource.HUMAN.value
            ]
            if followers:
                collection.update(
                    ids=followers,
                    metadatas=[{**labels.as_dict(), "label_source": LabelSource.MEMORY.value}] * len(followers),
                )
        return True
