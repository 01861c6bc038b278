"""The memory's index on a Chroma server, through chromadb-client: one collection per tenant.

Each tenant's entries live in their own collection (cosine space), so a lookup is an
unfiltered query of the tenant's own collection: its cost does not grow with other tenants'
memories, and isolation is structural rather than a filter. Each entry is the embedding we
computed (Chroma never embeds anything itself), the text the classifier saw, the labels and
who gave them. A collection records the embedding model that built it; a process configured
with another model refuses it until ``triage rebuild`` builds it again.

This is an index, not the record: Firestore holds every entry (``firestore_memory``) and
``triage rebuild`` rebuilds a collection from it, beside the live one, then swaps.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..domain import Labels, LabelSource, MemoryEntry, Neighbour, follows_correction
from ..errors import ConfigurationError, MemoryUnavailable
from .translate import translated

log = logging.getLogger(__name__)

SPACE = "cosine"
PAGE = 1000
STAGING = "-staging"
# Google-signed ID tokens live an hour; a client is rebuilt with a fresh one well before.
ID_TOKEN_LIFETIME_SECONDS = 45 * 60


def _translated(what: str) -> Any:
    # chromadb raises ValueError, httpx errors and its own types for an unreachable or failing server.
    return translated("Chroma", what, MemoryUnavailable, keep=(ConfigurationError, MemoryUnavailable))


def _labels(metadata: dict[str, Any]) -> Labels:
    return Labels(
        category=str(metadata["category"]),
        priority=str(metadata["priority"]),
        assignment_group=str(metadata["assignment_group"]),
    )


def _metadata(entry: MemoryEntry) -> dict[str, Any]:
    metadata: dict[str, Any] = {**entry.labels.as_dict(), "label_source": entry.label_source.value}
    if entry.source_ticket_id:
        metadata["source_ticket_id"] = entry.source_ticket_id
    return metadata


def columns(entries: Sequence[MemoryEntry], embeddings: Sequence[Sequence[float]]) -> dict[str, list]:
    """What Chroma's upsert takes, for these entries with these vectors."""
    return {
        "ids": [e.ticket_id for e in entries],
        "embeddings": [list(v) for v in embeddings],
        "documents": [e.text for e in entries],
        "metadatas": [_metadata(e) for e in entries],
    }


def fetch_google_id_token(audience: str) -> str:
    """An ID token for ``audience`` from the runtime's service account (a server behind IAM)."""
    import google.auth.transport.requests
    import google.oauth2.id_token

    return google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)


def collection_name(prefix: str, tenant: str) -> str:
    """A tenant's collection: readable, and unique (a digest of the tenant's exact name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", tenant.lower()).strip("-")[:40] or "tenant"
    return f"{prefix}-{slug}-{hashlib.sha256(tenant.encode()).hexdigest()[:10]}"


class ChromaIndex:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        prefix: str,
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
        self.prefix = prefix
        self._embedding_model = embedding_model
        self._model_version = model_version
        self._collections: dict[str, Any] = {}
        self._staging: dict[str, Any] = {}
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
    ) -> ChromaIndex:
        """``tenant`` and ``database`` are Chroma's own; ``collection`` prefixes each tenant's collection."""

        def factory() -> Any:
            import chromadb
            from chromadb.config import Settings

            if auth == "google_id_token":
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
        if self._client_lifetime is not None and self._client is not None and self._clock() >= self._client_expires:
            # The credential (an ID token) is about to expire: the next call builds a client with a fresh one.
            self._client = None
            self._collections.clear()
        if self._client is None:
            with _translated("connect"):
                self._client = self._client_factory()
            if self._client_lifetime is not None:
                self._client_expires = self._clock() + self._client_lifetime
        return self._client

    def _metadata(self, tenant: str) -> dict[str, Any]:
        return {
            "hnsw:space": SPACE,
            "embedding_model": self._embedding_model,
            "embedding_model_version": self._model_version,
            "tenant": tenant,
        }

    def _checked(self, collection: Any) -> Any:
        metadata = collection.metadata or {}
        built_by = f"{metadata.get('embedding_model')}@{metadata.get('embedding_model_version')}"
        if built_by != self.model:
            raise ConfigurationError(
                f"the memory collection {collection.name!r} was built with embedding model {built_by}, "
                f"but this process uses {self.model}: run `triage rebuild` to rebuild it with this model"
            )
        if metadata.get("hnsw:space") != SPACE:
            raise ConfigurationError(
                f"the memory collection {collection.name!r} uses {metadata.get('hnsw:space')!r} distance, "
                "not cosine: run `triage rebuild`"
            )
        return collection

    def collection(self, tenant: str, *, create: bool = False) -> Any | None:
        """The tenant's collection; None if there is none (and ``create`` is False)."""
        with self._lock:
            client = self._connect()
            if tenant in self._collections:
                return self._collections[tenant]
            name = collection_name(self.prefix, tenant)
            with _translated("open"):
                if create:
                    found = client.get_or_create_collection(
                        name, metadata=self._metadata(tenant), embedding_function=None
                    )
                else:
                    found = _get(client, name)
                    if found is None:
                        return None
            self._collections[tenant] = self._checked(found)
            return found

    def forget(self, tenant: str | None = None) -> None:
        """Drop cached collection handles (after a rebuild, or a server that lost its data)."""
        with self._lock:
            if tenant is None:
                self._collections.clear()
            else:
                self._collections.pop(tenant, None)

    def count(self, tenant: str) -> int | None:
        """Entries in the tenant's collection; None if it has none."""
        collection = self.collection(tenant)
        if collection is None:
            return None
        with _translated("count"):
            return int(collection.count())

    # ------------------------------------------------------------------ lookups and writes

    def nearest(self, embedding: Sequence[float], *, tenant: str, limit: int) -> list[Neighbour]:
        collection = self.collection(tenant)
        if collection is None:
            return []
        with _translated("query"):
            result = collection.query(
                query_embeddings=[list(embedding)], n_results=limit, include=["metadatas", "distances", "documents"]
            )
        return [
            Neighbour(
                ticket_id=ticket_id,
                similarity=1.0 - float(distance),
                labels=_labels(metadata),
                label_source=LabelSource(metadata["label_source"]),
                text=document or "",
                source_ticket_id=metadata.get("source_ticket_id"),
            )
            for ticket_id, distance, metadata, document in zip(
                result["ids"][0], result["distances"][0], result["metadatas"][0], result["documents"][0], strict=True
            )
        ]

    def upsert(self, tenant: str, entries: Sequence[MemoryEntry], *, create: bool = True) -> bool:
        """Insert or replace entries of one tenant; False (nothing written) if the tenant has no
        collection and ``create`` is False."""
        collection = self.collection(tenant, create=create)
        if collection is None:
            return False
        with _translated("upsert"):
            collection.upsert(**columns(entries, [e.embedding for e in entries]))
        return True

    def known(self, ticket_ids: Sequence[str], *, tenant: str) -> set[str]:
        collection = self.collection(tenant)
        if collection is None or not ticket_ids:
            return set()
        with _translated("get"):
            return set(collection.get(ids=list(ticket_ids), include=[])["ids"])

    def entries(self, tenant: str) -> Iterator[MemoryEntry]:
        collection = self.collection(tenant)
        if collection is not None:
            yield from _pages(collection, tenant)

    def relabel(
        self,
        ticket_id: str,
        *,
        tenant: str,
        labels: Labels,
        label_source: LabelSource,
        over: frozenset[LabelSource] | None = None,
    ) -> bool:
        collection = self.collection(tenant)
        if collection is None:
            return False
        with _translated("relabel"):
            found = collection.get(ids=[ticket_id], include=["metadatas"])
            if not found["ids"]:
                return False
            if over is not None and LabelSource(found["metadatas"][0]["label_source"]) not in over:
                return False
            collection.update(ids=[ticket_id], metadatas=[{**labels.as_dict(), "label_source": label_source.value}])
            # Entries answered from this one inherited its old labels: they follow the correction.
            derived = collection.get(where={"source_ticket_id": ticket_id}, include=["metadatas"])
            followers = [
                derived_id
                for derived_id, metadata in zip(derived["ids"], derived["metadatas"], strict=True)
                if follows_correction(LabelSource(metadata["label_source"]))
            ]
            if followers:
                memory = {**labels.as_dict(), "label_source": LabelSource.MEMORY.value}
                collection.update(ids=followers, metadatas=[memory] * len(followers))
        return True

    # ------------------------------------------------------------------ rebuilding

    def staging(self, tenant: str, *, fresh: bool = False) -> Any:
        """The collection a rebuild fills beside the live one; kept between runs, so a rebuild
        resumes where it stopped (``fresh``: start it over)."""
        if not fresh and tenant in self._staging:
            return self._staging[tenant]
        client = self._connect()
        name = collection_name(self.prefix, tenant) + STAGING
        with _translated("open staging"):
            if fresh and _get(client, name) is not None:
                client.delete_collection(name)
            found = client.get_or_create_collection(name, metadata=self._metadata(tenant), embedding_function=None)
        self._staging[tenant] = self._checked(found)
        return found

    def staged(self, tenant: str, ticket_ids: Sequence[str]) -> set[str]:
        """Which of these ids the tenant's staging collection holds already."""
        with _translated("read staging"):
            return set(self.staging(tenant).get(ids=list(ticket_ids), include=[])["ids"]) if ticket_ids else set()

    def stage(self, tenant: str, entries: Sequence[MemoryEntry], vectors: Sequence[Sequence[float]]) -> None:
        with _translated("write staging"):
            self.staging(tenant).upsert(**columns(entries, vectors))

    def swap(self, tenant: str) -> None:
        """Put the finished staging collection in place of the live one."""
        client = self._connect()
        live = collection_name(self.prefix, tenant)
        with _translated("swap"):
            if _get(client, live) is not None:
                client.delete_collection(live)
            client.get_collection(live + STAGING, embedding_function=None).modify(name=live)
        self._staging.pop(tenant, None)
        self.forget(tenant)

    def named(self, name: str) -> Any:
        """Any collection by its name (the first version's single collection, to import it)."""
        with _translated("open"):
            found = _get(self._connect(), name)
        if found is None:
            raise MemoryUnavailable(f"Chroma has no collection named {name!r}")
        return found

    def tenants(self) -> list[str]:
        """Tenants with a live collection under this prefix."""
        client = self._connect()
        with _translated("list"):
            found = []
            for listed in client.list_collections():
                name = listed.name if hasattr(listed, "name") else listed
                if name.startswith(f"{self.prefix}-") and not name.endswith(STAGING):
                    collection = client.get_collection(name, embedding_function=None)
                    tenant = (collection.metadata or {}).get("tenant")
                    if tenant and collection_name(self.prefix, tenant) == name:
                        found.append(str(tenant))
        return sorted(found)


def _get(client: Any, name: str) -> Any | None:
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError:
        return None


def _pages(collection: Any, tenant: str) -> Iterator[MemoryEntry]:
    """Every entry of a collection, without its vector (nothing that reads entries needs it)."""
    offset = 0
    while True:
        with _translated("read"):
            page = collection.get(include=["documents", "metadatas"], limit=PAGE, offset=offset)
        if not page["ids"]:
            return
        for ticket_id, document, metadata in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            yield MemoryEntry(
                ticket_id=ticket_id,
                tenant=tenant,
                embedding=(),
                text=document or "",
                labels=_labels(metadata),
                label_source=LabelSource(metadata["label_source"]),
                source_ticket_id=metadata.get("source_ticket_id"),
            )
        offset += len(page["ids"])
