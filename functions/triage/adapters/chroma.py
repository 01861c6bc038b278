"""Memory on a Chroma server, through chromadb-client.

One collection in cosine space holds one entry per ticket: the embedding we
computed (Chroma never embeds anything itself), the text the classifier saw, the
labels and who gave them. The collection records the embedding model (name and
version) that built it; a process configured with another model refuses to use it
until ``triage reindex`` rebuilds it. Every query is filtered by tenant, so an
answer from memory never crosses tenants.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..domain import Labels, LabelSource, MemoryEntry, Neighbour, follows_correction
from ..errors import ConfigurationError, MemoryUnavailable
from ..ports import Embedder
from .translate import translated

log = logging.getLogger(__name__)

SPACE = "cosine"
PAGE = 1000


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


def _entry(ticket_id: str, document: str | None, metadata: dict[str, Any]) -> MemoryEntry:
    """An entry as read back, without its vector (nothing that reads entries needs it)."""
    return MemoryEntry(
        ticket_id=ticket_id,
        tenant=str(metadata["tenant"]),
        embedding=(),
        text=document or "",
        labels=_labels(metadata),
        label_source=LabelSource(metadata["label_source"]),
        source_ticket_id=metadata.get("source_ticket_id"),
    )


def _translated(what: str) -> Any:
    # chromadb raises ValueError, httpx errors and its own types for an unreachable or failing server.
    return translated("Chroma", what, MemoryUnavailable, keep=(ConfigurationError, MemoryUnavailable))


# Google-signed ID tokens live an hour; a client is rebuilt with a fresh one well before.
ID_TOKEN_LIFETIME_SECONDS = 45 * 60


def _records(entries: Sequence[MemoryEntry], embeddings: Sequence[Sequence[float]]) -> dict[str, list]:
    """The columns Chroma's upsert takes, for these entries with these vectors."""
    return {
        "ids": [e.ticket_id for e in entries],
        "embeddings": [list(v) for v in embeddings],
        "documents": [e.text for e in entries],
        "metadatas": [_metadata(e) for e in entries],
    }


def fetch_google_id_token(audience: str) -> str:
    """An ID token for ``audience`` from the runtime's service account (Cloud Run IAM)."""
    import google.auth.transport.requests
    import google.oauth2.id_token

    return google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)


class ChromaMemory:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        collection: str,
        embedding_model: str,
        model_version: str,
        *,
        client_lifetime_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client_factory = client_factory
        self._client: Any = None
        self._client_lifetime = client_lifetime_seconds
        self._client_expires = 0.0
        self._clock = clock
        self._collection_name = collection
        self._embedding_model = embedding_model
        self._model_version = model_version
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
        model_version: str,
        auth: str = "token",
        audience: str | None = None,
        id_token: Callable[[str], str] = fetch_google_id_token,
        clock: Callable[[], float] = time.monotonic,
    ) -> ChromaMemory:
        def factory() -> Any:
            import chromadb
            from chromadb.config import Settings

            if auth == "google_id_token":
                # A Chroma service on Cloud Run that only the functions' service accounts may invoke.
                headers = {"Authorization": f"Bearer {id_token(audience or f'https://{host}')}"}
            else:
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

        lifetime = ID_TOKEN_LIFETIME_SECONDS if auth == "google_id_token" else None
        return cls(factory, collection, embedding_model, model_version, client_lifetime_seconds=lifetime, clock=clock)

    @property
    def model(self) -> str:
        return f"{self._embedding_model}@{self._model_version}"

    def _connect(self) -> Any:
        if self._client is None:
            with _translated("connect"):
                self._client = self._client_factory()
            if self._client_lifetime is not None:
                self._client_expires = self._clock() + self._client_lifetime
        return self._client

    def _expire_credentials(self) -> None:
        """Drop a client whose credential (an ID token) is about to expire; the next call builds one."""
        if self._client_lifetime is not None and self._client is not None and self._clock() >= self._client_expires:
            self._client = None
            self._collection = None

    def _collection_metadata(self) -> dict[str, Any]:
        return {
            "hnsw:space": SPACE,
            "embedding_model": self._embedding_model,
            "embedding_model_version": self._model_version,
        }

    def _open(self) -> Any:
        with self._lock:
            self._expire_credentials()
            if self._collection is not None:
                return self._collection
            client = self._connect()
            with _translated("open"):
                collection = client.get_or_create_collection(
                    self._collection_name, metadata=self._collection_metadata(), embedding_function=None
                )
            metadata = collection.metadata or {}
            built_by = f"{metadata.get('embedding_model')}@{metadata.get('embedding_model_version')}"
            if built_by != self.model:
                raise ConfigurationError(
                    f"the memory collection {self._collection_name!r} was built with embedding model {built_by}, "
                    f"but this process uses {self.model}: run `triage reindex` to rebuild it with this model, "
                    f"or set CHROMA_COLLECTION to a new collection"
                )
            if metadata.get("hnsw:space") != SPACE:
                raise ConfigurationError(
                    f"the memory collection {self._collection_name!r} uses {metadata.get('hnsw:space')!r} "
                    "distance, not cosine: run `triage reindex`"
                )
            self._collection = collection
            return collection

    # ------------------------------------------------------------------ the Memory port

    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]:
        collection = self._open()
        with _translated("query"):
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

    def remember(self, *entries: MemoryEntry) -> None:
        if not entries:
            return
        collection = self._open()
        with _translated("upsert"):
            collection.upsert(**_records(entries, [e.embedding for e in entries]))

    def known(self, ticket_ids: Sequence[str]) -> set[str]:
        if not ticket_ids:
            return set()
        collection = self._open()
        with _translated("get"):
            return set(collection.get(ids=list(ticket_ids), include=[])["ids"])

    def entries(self, tenant: str) -> Iterator[MemoryEntry]:
        collection = self._open()
        yield from self._pages(collection, where={"tenant": tenant})

    def relabel(self, ticket_id: str, *, tenant: str, labels: Labels, label_source: LabelSource) -> bool:
        collection = self._open()
        new_labels = {**labels.as_dict(), "label_source": label_source.value}
        with _translated("relabel"):
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
                if follows_correction(LabelSource(metadata["label_source"]))
            ]
            if followers:
                collection.update(
                    ids=followers,
                    metadatas=[{**labels.as_dict(), "label_source": LabelSource.MEMORY.value}] * len(followers),
                )
        return True

    # ------------------------------------------------------------------ maintenance

    def count(self) -> int:
        collection = self._open()
        with _translated("count"):
            return int(collection.count())

    def _pages(self, collection: Any, *, where: dict | None) -> Iterator[MemoryEntry]:
        offset = 0
        while True:
            with _translated("read"):
                page = collection.get(where=where, include=["documents", "metadatas"], limit=PAGE, offset=offset)
            ids = page["ids"]
            if not ids:
                return
            for ticket_id, document, metadata in zip(ids, page["documents"], page["metadatas"], strict=True):
                yield _entry(ticket_id, document, metadata)
            offset += len(ids)

    def reindex(
        self, embedder: Embedder, *, batch_size: int = 512, progress: Callable[[int], None] | None = None
    ) -> int:
        """Rebuild the collection with ``embedder`` from the texts and labels it holds.

        The new collection is built beside the old one and takes its name only when
        complete, so an interrupted run leaves the old memory in place (run it again).
        Returns the number of entries.
        """
        client = self._connect()
        staging_name = f"{self._collection_name}-reindex"
        with _translated("reindex"):
            existing = {c.name if hasattr(c, "name") else c for c in client.list_collections()}
            if staging_name in existing:
                client.delete_collection(staging_name)  # left by an interrupted run
            if self._collection_name not in existing:
                self._collection = None
                self._open()
                return 0
            old = client.get_collection(self._collection_name, embedding_function=None)
            staging = client.create_collection(
                staging_name, metadata=self._collection_metadata(), embedding_function=None
            )
        started, total = time.perf_counter(), 0
        batch: list[MemoryEntry] = []

        def flush() -> None:
            nonlocal total
            vectors = embedder.embed([e.text for e in batch])
            with _translated("reindex upsert"):
                staging.upsert(**_records(batch, vectors))
            total += len(batch)
            if progress:
                progress(len(batch))
            batch.clear()

        for entry in self._pages(old, where=None):
            batch.append(entry)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        with _translated("reindex swap"):
            client.delete_collection(self._collection_name)
            staging.modify(name=self._collection_name)
        with self._lock:
            self._collection = None
        log.info(
            "memory reindexed",
            extra={
                "collection": self._collection_name,
                "entries": total,
                "model": self.model,
                "seconds": round(time.perf_counter() - started, 1),
            },
        )
        return total
