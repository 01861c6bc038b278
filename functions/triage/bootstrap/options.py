"""What the use cases are told by the settings: processing, intake, recovery and delivery options,
the write-back queue, pricing. Built once per process from ``settings()``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from ..redaction import redactor as build_redactor
from ..service import DeliveryOptions, IntakeOptions, ProcessingOptions, RecoveryOptions, WritebackQueue
from ..views import Pricing
from .registry import _component
from .systems import _publisher_to, settings


def redact() -> Callable[[str], str]:
    """The redaction (REDACT) applied before text reaches the embedder, the LLM or the memory."""
    return _component("redact", lambda: build_redactor(settings().redaction_kinds))


def options() -> ProcessingOptions:
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
            redact=redact(),
            memory_unavailable=config.memory_unavailable,
            audit_rate=config.memory_audit_rate,
        )

    return _component("options", build)


def intake() -> IntakeOptions:
    def build() -> IntakeOptions:
        config = settings()
        return IntakeOptions(
            # Longer than a publish may take, so an in-flight first request is never overtaken.
            in_flight_for=timedelta(seconds=2 * config.publish_timeout_seconds),
            # What is stored: the original text if STORE_ORIGINAL_TEXT, else the redaction.
            redact=(lambda text: text) if config.store_original_text else redact(),
        )

    return _component("intake", build)


def recovery() -> RecoveryOptions:
    def build() -> RecoveryOptions:
        config = settings()
        return RecoveryOptions(
            older_than=timedelta(seconds=config.reconcile_after_seconds),
            limit=config.reconcile_limit,
            max_republish=config.reconcile_max_republish,
        )

    return _component("recovery", build)


def delivery() -> DeliveryOptions:
    def build() -> DeliveryOptions:
        config = settings()
        return DeliveryOptions(
            lease_seconds=config.processing_lease_seconds, max_deliveries=config.writeback_max_deliveries
        )

    return _component("delivery", build)


def writeback() -> WritebackQueue | None:
    """Where labels in force are queued for write-back; None if no source wants it."""

    def build() -> WritebackQueue | None:
        config = settings()
        if not config.writeback_sources:
            return None
        return WritebackQueue(sources=config.writeback_sources, publisher=_publisher_to(config.writeback_topic))

    return _component("writeback", build)


def pricing() -> Pricing:
    def build() -> Pricing:
        config = settings()
        return Pricing(price_per_1k_tokens=config.llm_price_per_1k_tokens, tokens_per_call=config.llm_tokens_per_call)

    return _component("pricing", build)


def review_below_confidence() -> float:
    return settings().review_below_confidence
