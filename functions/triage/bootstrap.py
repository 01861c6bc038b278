"""The composition root: builds each adapter on first use, once per process.

Nothing is created at import time (a cold start pays only for what its entry
point touches: the API never loads the embedding model), and nothing per request.
Tests swap in their own components with ``override`` and clear them with ``reset``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from . import logs
from .config import Settings, load_settings, load_taxonomy
from .domain import Taxonomy
from .ports import Classifier, Clock, Embedder, Memory, Publisher, TicketStore, WritebackTarget
from .redaction import redactor
from .security import RateLimiter
from .service import ProcessingOptions, ReconcileReport, WritebackQueue
from .service import reconcile as service_reconcile

VERSION = "0.1.0"

T = TypeVar("T")
_lock = threading.RLock()
_built: dict[str, Any] = {}
_overrides: dict[str, Any] = {}


def _component(name: str, factory: Callable[[], T]) -> T:
    if name in _overrides:
        return _overrides[name]
    built = _built.get(name)
    if built is not None:
        return built
    with _lock:
        if name not in _built:
            _built[name] = factory()
        return _built[name]


def override(**components: Any) -> None:
    """Use these components instead of building them (tests, tools)."""
    _overrides.update(components)


def reset() -> None:
    with _lock:
        _built.clear()
        _overrides.clear()


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


def store() -> TicketStore:
    def build() -> TicketStore:
        from google.cloud import firestore

        from .adapters.firestore import FirestoreTicketStore

        config = settings()
        return FirestoreTicketStore(
            firestore.Client(project=config.google_cloud_project),
            config.tickets_collection,
            deliveries_collection=config.deliveries_collection,
        )

    return _component("store", build)


def publisher() -> Publisher:
    def build() -> Publisher:
        from .adapters.pubsub import PubSubPublisher

        config = settings()
        return PubSubPublisher.create(
            config.google_cloud_project, config.tickets_topic, timeout_seconds=config.publish_timeout_seconds
        )

    return _component("publisher", build)


def embedder() -> Embedder:
    def build() -> Embedder:
        from .adapters.embedder import SentenceTransformerEmbedder

        config = settings()
        return SentenceTransformerEmbedder(config.embedding_model, config.embedding_model_path)

    return _component("embedder", build)


def memory() -> Memory:
    def build() -> Memory:
        from .adapters.chroma import ChromaMemory

        config = settings()
        return ChromaMemory.connect(
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

    return _component("memory", build)


def classifier() -> Classifier:
    def build() -> Classifier:
        config = settings()
        if config.uses_gemini:
            from .adapters.gemini import GeminiClassifier

            assert config.gemini_api_key is not None
            return GeminiClassifier(
                api_key=config.gemini_api_key.get_secret_value(),
                model=config.gemini_model,
                base_url=config.gemini_base_url,
                timeout_seconds=config.gemini_timeout_seconds,
                max_attempts=config.gemini_max_attempts,
                retry_initial_seconds=config.gemini_retry_initial_seconds,
                retry_max_seconds=config.gemini_retry_max_seconds,
                output_attempts=config.gemini_output_attempts,
            )
        from .adapters.local_classifier import LocalEmbeddingClassifier

        return LocalEmbeddingClassifier(embedder(), memory=memory(), human_weight=config.memory_human_weight)

    return _component("classifier", build)


def processing_options() -> ProcessingOptions:
    def build() -> ProcessingOptions:
        config = settings()
        return ProcessingOptions(
            memory_policy=config.memory_policy,
            memory_neighbours=config.memory_neighbours,
            few_shot_max_examples=config.few_shot_max_examples,
            few_shot_max_chars=config.few_shot_max_chars,
            model_text_max_chars=config.model_text_max_chars,
            processing_lease_seconds=config.processing_lease_seconds,
            max_delivery_attempts=config.max_delivery_attempts,
            redact=redactor(config.redaction_kinds),
            memory_unavailable=config.memory_unavailable,
        )

    return _component("processing_options", build)


def writeback_queue() -> WritebackQueue | None:
    """Where a classified ticket asks for its labels to be written back; None if no source wants it."""

    def build() -> WritebackQueue | None:
        from .adapters.pubsub import PubSubPublisher

        config = settings()
        if not config.writeback_sources:
            return None
        publisher = PubSubPublisher.create(
            config.google_cloud_project, config.writeback_topic, timeout_seconds=config.publish_timeout_seconds
        )
        return WritebackQueue(sources=config.writeback_sources, publisher=publisher)

    return _component("writeback_queue", build)


def writeback_targets() -> dict[str, WritebackTarget]:
    def build() -> dict[str, WritebackTarget]:
        from .adapters.source_clients import jira_client, servicenow_client
        from .integrations import jira, servicenow

        config = settings()
        rules = config.writeback_rules
        options = {
            "timeout_seconds": config.writeback_timeout_seconds,
            "max_attempts": config.writeback_max_attempts,
            "retry_initial_seconds": config.writeback_retry_initial_seconds,
            "retry_max_seconds": config.writeback_retry_max_seconds,
        }
        targets: dict[str, WritebackTarget] = {}
        if config.jira_writeback != "off":
            assert config.jira_base_url and config.jira_user_email and config.jira_api_token
            client = jira_client(
                base_url=config.jira_base_url,
                email=config.jira_user_email,
                api_token=config.jira_api_token.get_secret_value(),
                **options,
            )
            targets["jira"] = WritebackTarget(
                client, functools.partial(jira.plan, rules=rules), dry_run=config.jira_writeback == "dry_run"
            )
        if config.servicenow_writeback != "off":
            assert config.servicenow_instance_url and config.servicenow_user and config.servicenow_password
            client = servicenow_client(
                base_url=config.servicenow_instance_url,
                user=config.servicenow_user,
                password=config.servicenow_password.get_secret_value(),
                **options,
            )
            targets["servicenow"] = WritebackTarget(
                client,
                functools.partial(servicenow.plan, rules=rules),
                dry_run=config.servicenow_writeback == "dry_run",
            )
        return targets

    return _component("writeback_targets", build)


def rate_limiter() -> RateLimiter | None:
    def build() -> RateLimiter | None:
        per_minute = settings().rate_limit_per_minute
        return RateLimiter(per_minute) if per_minute else None

    return _component("rate_limiter", build)


def storage_redactor() -> Callable[[str], str]:
    """What ingest applies before storing: nothing if STORE_ORIGINAL_TEXT, else the redaction."""
    config = settings()
    return (lambda text: text) if config.store_original_text else redactor(config.redaction_kinds)


def fallback_classifier() -> Classifier | None:
    """The local classifier, when the configured classifier is Gemini and CLASSIFIER_FALLBACK=local."""

    def build() -> Classifier | None:
        config = settings()
        if not (config.uses_gemini and config.classifier_fallback == "local"):
            return None
        from .adapters.local_classifier import LocalEmbeddingClassifier

        return LocalEmbeddingClassifier(embedder(), memory=memory(), human_weight=config.memory_human_weight)

    return _component("fallback_classifier", build)


def reconcile(*, older_than_seconds: float | None = None, limit: int | None = None) -> ReconcileReport:
    """``service.reconcile`` with this process's components, the settings filling what is not given.

    One place for the three ways it runs: the scheduled ``reconcile`` message in the worker,
    ``POST /admin/reconcile`` and ``triage reconcile``.
    """
    config = settings()
    return service_reconcile(
        store=store(),
        publisher=publisher(),
        clock=clock(),
        older_than=timedelta(seconds=older_than_seconds or config.reconcile_after_seconds),
        limit=limit or config.reconcile_limit,
        max_republish=config.reconcile_max_republish,
        writeback=writeback_queue(),
    )
