"""The outside systems, each built once per process: Firestore, Pub/Sub, the embedding model,
Chroma, the classifiers, the write-back clients, and the API's keys and rate limiter."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .. import logs
from ..config import WRITEBACK_SOURCES, Settings, load_settings, load_taxonomy
from ..domain import Taxonomy
from ..ports import Classifier, Clock, Embedder, Memory, Publisher, Verifier, WritebackTarget
from ..security import ApiKey, RateLimiter
from .registry import _component


def settings() -> Settings:
    def build() -> Settings:
        loaded = load_settings()
        logs.configure(loaded.log_level)
        return loaded

    return _component("settings", build)


def taxonomy() -> Taxonomy:
    return _component("taxonomy", lambda: load_taxonomy(settings().taxonomy_file))


def clock() -> Clock:
    return _component("clock", lambda: lambda: datetime.now(UTC))


def store() -> Any:
    """The Firestore store: tickets, the queries for stopped work, the read model, webhook deliveries."""

    def build() -> Any:
        from ..adapters.firestore import FirestoreTicketStore

        config = settings()
        return FirestoreTicketStore(
            firestore_client(),
            config.tickets_collection,
            deliveries_collection=config.deliveries_collection,
        )

    return _component("store", build)


def _publisher_to(topic: str) -> Publisher:
    from ..adapters.pubsub import PubSubPublisher

    config = settings()
    return PubSubPublisher.create(config.google_cloud_project, topic, timeout_seconds=config.publish_timeout_seconds)


def publisher() -> Publisher:
    return _component("publisher", lambda: _publisher_to(settings().tickets_topic))


def embedder() -> Embedder:
    def build() -> Embedder:
        from ..adapters.embedder import build_embedder

        config = settings()
        return build_embedder(config.embedding_backend, config.embedding_model, config.embedding_model_path)

    return _component("embedder", build)


def firestore_client() -> Any:
    def build() -> Any:
        from google.cloud import firestore

        return firestore.Client(project=settings().google_cloud_project)

    return _component("firestore_client", build)


def memory_records() -> Any:
    """The memory's system of record: every entry in Firestore (MEMORY_COLLECTION)."""

    def build() -> Any:
        from ..adapters.firestore_memory import FirestoreMemoryRecords

        return FirestoreMemoryRecords(firestore_client(), settings().memory_collection)

    return _component("memory_records", build)


def memory_index() -> Any:
    """The memory's index: a Chroma collection per tenant, named from CHROMA_COLLECTION."""

    def build() -> Any:
        from ..adapters.chroma import ChromaIndex

        config = settings()
        return ChromaIndex.connect(
            host=config.chroma_host,
            port=config.chroma_port,
            ssl=config.chroma_ssl,
            token=config.chroma_token.get_secret_value() if config.chroma_token else None,
            auth=config.chroma_auth,
            audience=config.chroma_audience,
            tenant=config.chroma_tenant,
            database=config.chroma_database,
            collection=config.chroma_collection,
            # The name and a fingerprint of the model's files: the API never loads the model itself.
            embedding_model=embedder().name,
            model_version=embedder().version,
        )

    return _component("memory_index", build)


def calibrations() -> Any:
    """Each tenant's fitted decision and its measured outcomes (CALIBRATION_COLLECTION)."""

    def build() -> Any:
        from ..adapters.firestore_calibration import FirestoreCalibrations

        config = settings()
        return FirestoreCalibrations(
            firestore_client(), config.calibration_collection, cache_seconds=config.calibration_cache_seconds
        )

    return _component("calibrations", build)


def memory() -> Memory:
    def build() -> Memory:
        from ..adapters.durable_memory import DurableMemory

        return DurableMemory(memory_records(), memory_index(), check_seconds=settings().memory_index_check_seconds)

    return _component("memory", build)


def local_classifier() -> Any:
    """The embedded local classifier, one per process: the classifier without Gemini, else its
    fallback and the judge of its answers' confidence."""

    def build() -> Any:
        from ..adapters.local_classifier import LocalEmbeddingClassifier

        return LocalEmbeddingClassifier(embedder(), memory=memory(), human_weight=settings().memory_human_weight)

    return _component("local_classifier", build)


def classifier() -> Classifier:
    def build() -> Classifier:
        config = settings()
        if not config.uses_gemini:
            return local_classifier()
        from ..adapters.gemini import GeminiClassifier

        return GeminiClassifier(
            model=config.gemini_model,
            backend=config.gemini_backend,
            api_key=config.gemini_api_key.get_secret_value() if config.gemini_api_key else None,
            project=config.vertex_project,
            location=config.gemini_location,
            base_url=config.gemini_base_url,
            timeout_seconds=config.gemini_timeout_seconds,
            max_attempts=config.gemini_max_attempts,
            retry_initial_seconds=config.gemini_retry_initial_seconds,
            retry_max_seconds=config.gemini_retry_max_seconds,
            output_attempts=config.gemini_output_attempts,
            thinking_level=None if config.gemini_thinking_level == "model" else config.gemini_thinking_level,
            temperature=config.gemini_temperature,
            max_output_tokens=config.gemini_max_output_tokens,
        )

    return _component("classifier", build)


def verifier() -> Verifier | None:
    """The local classifier's second opinion on an LLM's labels (their confidence); None when
    the local classifier is the classifier itself."""
    return local_classifier() if settings().uses_gemini else None


def fallback() -> Classifier | None:
    """The local classifier, when the configured classifier is Gemini and CLASSIFIER_FALLBACK=local."""

    def build() -> Classifier | None:
        config = settings()
        return local_classifier() if config.uses_gemini and config.classifier_fallback == "local" else None

    return _component("fallback", build)


def targets() -> Mapping[str, WritebackTarget]:
    """The write-back client and plan of every source whose write-back is not off."""

    def build() -> Mapping[str, WritebackTarget]:
        from ..adapters.source_clients import HttpSourceClient
        from ..sources import jira, servicenow

        config = settings()
        found: dict[str, WritebackTarget] = {}
        for source in (jira.WRITEBACK, servicenow.WRITEBACK):
            assert source.name in WRITEBACK_SOURCES
            mode, base_url, user, secret = config.writeback_connection(source.name)
            if mode == "off":
                continue
            assert base_url and user and secret  # load_settings refuses the mode without them
            client = HttpSourceClient(
                source,
                base_url=base_url,
                username=user,
                password=secret.get_secret_value(),
                timeout_seconds=config.writeback_timeout_seconds,
                http_attempts=config.writeback_http_attempts,
                retry_initial_seconds=config.writeback_retry_initial_seconds,
                retry_max_seconds=config.writeback_retry_max_seconds,
            )
            plan = functools.partial(source.plan, rules=config.writeback_rules)
            found[source.name] = WritebackTarget(client, plan, dry_run=mode == "dry_run")
        return found

    return _component("targets", build)


def api_keys() -> tuple[ApiKey, ...]:
    """API_KEYS, parsed and hashed once per process."""
    return _component("api_keys", lambda: settings().api_key_list)


def rate_limiter() -> RateLimiter | None:
    def build() -> RateLimiter | None:
        per_minute = settings().rate_limit_per_minute
        return RateLimiter(per_minute) if per_minute else None

    return _component("rate_limiter", build)


# A use case's keyword-only parameter -> the component bound to it.
