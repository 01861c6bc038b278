"""Settings, read once per process from the environment.

Each field's environment variable is its name in upper case, the same name the
README's table, the tests and Terraform use. Emulators are chosen only by
``FIRESTORE_EMULATOR_HOST`` / ``PUBSUB_EMULATOR_HOST`` being set, which the Google
client libraries read themselves: nothing here branches on "local".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain import Taxonomy, WritebackRules
from .errors import ConfigurationError
from .policy import MEMORY_NEIGHBOURS, MemoryPolicy
from .redaction import parse_kinds
from .security import ApiKey, parse_api_keys

DEFAULT_TAXONOMY_FILE = Path(__file__).with_name("default_taxonomy.json")
WRITEBACK_SOURCES = ("jira", "servicenow")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, case_sensitive=False, extra="ignore")

    google_cloud_project: str = "triage-local"
    tickets_topic: str = "tickets"
    tickets_collection: str = "tickets"
    memory_collection: str = "memory_entries"
    calibration_collection: str = "calibration"
    # How long a process keeps a tenant's calibration before reading it again (a tightened bar is
    # seen at once by the process that tightened it, by the others within this time).
    calibration_cache_seconds: float = Field(60.0, ge=0)
    default_tenant: str = "default"
    publish_timeout_seconds: float = Field(10.0, gt=0)

    chroma_host: str = "127.0.0.1"
    chroma_port: int = Field(8000, gt=0, lt=65536)
    chroma_ssl: bool = False
    chroma_token: SecretStr | None = None
    # token: CHROMA_TOKEN as x-chroma-token (Chroma Cloud, a proxy); google_id_token: an ID token of
    # the runtime's service account, for a Chroma service on Cloud Run behind IAM (infra/chroma.tf).
    chroma_auth: Literal["token", "google_id_token"] = "token"
    chroma_audience: str | None = None
    chroma_tenant: str = "default_tenant"
    chroma_database: str = "default_database"
    chroma_collection: str = "tickets"

    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_model_path: str | None = None
    # onnx: the export `make model` wrote (no torch in the worker); auto: that export when it is of
    # this model, else sentence-transformers.
    embedding_backend: Literal["auto", "onnx", "sentence-transformers"] = "auto"

    classifier: Literal["auto", "gemini", "local"] = "auto"
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-3.5-flash"
    # api: the Gemini API with GEMINI_API_KEY; vertex: Vertex AI with Application Default Credentials.
    gemini_backend: Literal["api", "vertex"] = "api"
    gemini_project: str | None = None  # Vertex AI: default GOOGLE_CLOUD_PROJECT
    gemini_location: str = "global"
    # How much the model thinks before it answers; thinking tokens count against the output budget.
    gemini_thinking_level: Literal["minimal", "low", "medium", "high", "model"] = "low"
    gemini_temperature: float | None = Field(None, ge=0, le=2)  # None: the model's default
    gemini_max_output_tokens: int = Field(4096, ge=256)
    gemini_base_url: str | None = None
    gemini_timeout_seconds: float = Field(30.0, gt=0)
    gemini_max_attempts: int = Field(5, ge=1)
    gemini_retry_initial_seconds: float = Field(1.0, gt=0)
    gemini_retry_max_seconds: float = Field(60.0, gt=0)
    gemini_output_attempts: int = Field(2, ge=1)

    taxonomy_file: Path = DEFAULT_TAXONOMY_FILE

    redact: str = "secret,email,ip,phone"
    store_original_text: bool = False

    api_keys: SecretStr | None = None
    rate_limit_per_minute: int = Field(600, ge=0)
    public_base_url: str | None = None
    # Above the largest body the schema allows, written compactly: 32,000 description characters
    # as JSON escapes of astral characters are 384,000 bytes (schemathesis found a valid one refused).
    max_body_bytes: int = Field(512 * 1024, gt=0)
    model_text_max_chars: int = Field(4_000, gt=0)

    max_delivery_attempts: int = Field(5, ge=1)
    processing_lease_seconds: float = Field(120.0, gt=0)
    classifier_fallback: Literal["local", "none"] = "local"
    memory_unavailable: Literal["classify", "retry"] = "classify"
    reconcile_after_seconds: float = Field(300.0, gt=0)
    reconcile_max_republish: int = Field(3, ge=0)
    reconcile_limit: int = Field(500, ge=1)

    memory_neighbours: int = Field(MEMORY_NEIGHBOURS, ge=1, le=100)
    memory_near_duplicate_similarity: float = MemoryPolicy.near_duplicate_similarity
    memory_human_near_duplicate_similarity: float = MemoryPolicy.human_near_duplicate_similarity
    memory_agreement_neighbours: int = MemoryPolicy.agreement_neighbours
    memory_agreement_similarity: float = MemoryPolicy.agreement_similarity
    memory_agreement_min_voters: int = MemoryPolicy.agreement_min_voters
    memory_agreement_share: float = MemoryPolicy.agreement_share
    memory_similarity_exponent: float = MemoryPolicy.similarity_exponent
    memory_human_weight: float = MemoryPolicy.human_weight
    # How often a process looks again at whether a tenant's index is there (seconds; at once after a failure).
    memory_index_check_seconds: float = Field(60.0, gt=0)
    # The precision memory answers must keep: the default of `triage calibrate --target`.
    memory_target_precision: float = Field(0.97, gt=0.5, lt=1.0)
    # The share of memory answers the classifier of record also answers, in the background.
    memory_audit_rate: float = Field(0.05, ge=0.0, le=1.0)

    few_shot_max_examples: int = Field(8, ge=0)
    few_shot_max_chars: int = Field(6_000, ge=0)

    log_level: str = "INFO"

    # Operator view
    llm_price_per_1k_tokens: float = Field(0.0, ge=0)
    llm_tokens_per_call: int = Field(1500, ge=0)
    review_below_confidence: float = Field(0.6, ge=0, le=1)

    # Webhooks in
    deliveries_collection: str = "webhook_deliveries"
    webhook_max_body_bytes: int = Field(5 * 1024 * 1024, gt=0)
    jira_webhook_secret: SecretStr | None = None
    jira_tenant: str | None = None
    servicenow_webhook_auth: Literal["none", "basic", "bearer", "hmac"] = "none"
    servicenow_webhook_user: str | None = None
    servicenow_webhook_password: SecretStr | None = None
    servicenow_webhook_token: SecretStr | None = None
    servicenow_webhook_secret: SecretStr | None = None
    servicenow_tenant: str | None = None

    # Write-back out
    writeback_topic: str = "ticket-writeback"
    writeback_min_confidence: float = Field(0.7, ge=0, le=1)
    # HTTP attempts per call to the source (retries inside one delivery) ...
    writeback_http_attempts: int = Field(4, ge=1)
    # ... and deliveries of one write-back message before the write-back is Failed.
    writeback_max_deliveries: int = Field(5, ge=1)
    writeback_retry_initial_seconds: float = Field(0.5, gt=0)
    writeback_retry_max_seconds: float = Field(30.0, gt=0)
    writeback_timeout_seconds: float = Field(10.0, gt=0)
    jira_writeback: Literal["off", "dry_run", "on"] = "off"
    jira_base_url: str | None = None
    jira_user_email: str | None = None
    jira_api_token: SecretStr | None = None
    jira_writeback_fields: str = "labels"
    jira_label_prefix: str = "triage-"
    jira_priority_map: str | None = None
    servicenow_writeback: Literal["off", "dry_run", "on"] = "off"
    servicenow_instance_url: str | None = None
    servicenow_user: str | None = None
    servicenow_password: SecretStr | None = None
    servicenow_category_map: str | None = None

    @property
    def writeback_rules(self) -> WritebackRules:
        fields = frozenset(f.strip() for f in self.jira_writeback_fields.split(",") if f.strip())
        return WritebackRules(
            min_confidence=self.writeback_min_confidence,
            jira_fields=fields,
            label_prefix=self.jira_label_prefix,
            priority_map=_json_map("JIRA_PRIORITY_MAP", self.jira_priority_map),
            category_map=_json_map("SERVICENOW_CATEGORY_MAP", self.servicenow_category_map),
        )

    def writeback_connection(self, source: str) -> tuple[str, str | None, str | None, SecretStr | None]:
        """(mode, base URL, user, secret) of a source's write-back: JIRA_WRITEBACK, JIRA_BASE_URL,
        JIRA_USER_EMAIL, JIRA_API_TOKEN, or the SERVICENOW_* equivalents."""
        if source == "jira":
            return self.jira_writeback, self.jira_base_url, self.jira_user_email, self.jira_api_token
        if source == "servicenow":
            return (
                self.servicenow_writeback,
                self.servicenow_instance_url,
                self.servicenow_user,
                self.servicenow_password,
            )
        raise ValueError(f"no write-back settings for source {source!r}")

    @property
    def writeback_sources(self) -> frozenset[str]:
        return frozenset(source for source in WRITEBACK_SOURCES if self.writeback_connection(source)[0] != "off")

    @property
    def memory_policy(self) -> MemoryPolicy:
        return MemoryPolicy(
            near_duplicate_similarity=self.memory_near_duplicate_similarity,
            human_near_duplicate_similarity=self.memory_human_near_duplicate_similarity,
            agreement_neighbours=self.memory_agreement_neighbours,
            agreement_similarity=self.memory_agreement_similarity,
            agreement_min_voters=self.memory_agreement_min_voters,
            agreement_share=self.memory_agreement_share,
            similarity_exponent=self.memory_similarity_exponent,
            human_weight=self.memory_human_weight,
        )

    @property
    def uses_gemini(self) -> bool:
        """CLASSIFIER=gemini, or auto with a way to reach it: Vertex AI, or an API key."""
        if self.classifier == "gemini":
            return True
        return self.classifier == "auto" and (self.gemini_backend == "vertex" or self.gemini_api_key is not None)

    @property
    def vertex_project(self) -> str | None:
        """The Vertex AI project: GEMINI_PROJECT, else a GOOGLE_CLOUD_PROJECT set in the environment."""
        if self.gemini_project:
            return self.gemini_project
        return self.google_cloud_project if "google_cloud_project" in self.model_fields_set else None

    @property
    def redaction_kinds(self) -> tuple[str, ...]:
        return parse_kinds(self.redact)

    @property
    def api_key_list(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_keys.get_secret_value() if self.api_keys else None)


def _json_map(name: str, value: str | None) -> dict[str, str]:
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not JSON: {error}") from error
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ValueError(f"{name} must be a JSON object of names to names")
    return {str(k): v for k, v in loaded.items()}


_REQUIRED = {
    ("jira_writeback", "dry_run"): ("jira_base_url", "jira_user_email", "jira_api_token"),
    ("jira_writeback", "on"): ("jira_base_url", "jira_user_email", "jira_api_token"),
    ("servicenow_writeback", "dry_run"): ("servicenow_instance_url", "servicenow_user", "servicenow_password"),
    ("servicenow_writeback", "on"): ("servicenow_instance_url", "servicenow_user", "servicenow_password"),
    ("servicenow_webhook_auth", "basic"): ("servicenow_webhook_user", "servicenow_webhook_password"),
    ("servicenow_webhook_auth", "bearer"): ("servicenow_webhook_token",),
    ("servicenow_webhook_auth", "hmac"): ("servicenow_webhook_secret",),
}


def load_settings() -> Settings:
    try:
        settings = Settings()
        _ = settings.memory_policy, settings.api_key_list, settings.writeback_rules, settings.redaction_kinds
    except ValidationError as error:
        problems = "; ".join(
            # The setting's name and what is wrong, never its value: it may be a secret.
            f"{'.'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from error
    except ValueError as error:
        raise ConfigurationError(f"invalid configuration: {error}") from error
    if settings.memory_neighbours < settings.memory_agreement_neighbours:
        raise ConfigurationError("MEMORY_NEIGHBOURS must be at least MEMORY_AGREEMENT_NEIGHBOURS")
    for (name, value), needed in _REQUIRED.items():
        if getattr(settings, name) == value:
            missing = [n.upper() for n in needed if not getattr(settings, n)]
            if missing:
                raise ConfigurationError(f"{name.upper()}={value} needs {', '.join(missing)}")
    if settings.uses_gemini and settings.gemini_backend == "api" and settings.gemini_api_key is None:
        raise ConfigurationError("CLASSIFIER=gemini with GEMINI_BACKEND=api needs GEMINI_API_KEY")
    if settings.uses_gemini and settings.gemini_backend == "vertex":
        if not settings.vertex_project:
            raise ConfigurationError("GEMINI_BACKEND=vertex needs GEMINI_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        if not settings.gemini_location.strip():
            raise ConfigurationError("GEMINI_BACKEND=vertex needs GEMINI_LOCATION (e.g. global)")
    return settings


def load_taxonomy(path: Path) -> Taxonomy:
    try:
        return Taxonomy.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValueError) as error:
        raise ConfigurationError(f"cannot load the taxonomy from TAXONOMY_FILE={path}: {error}") from error
