from __future__ import annotations

import hashlib
import json

import pytest

from triage import bootstrap
from triage.config import load_settings, load_taxonomy
from triage.errors import ConfigurationError
from triage.policy import MemoryPolicy


def test_defaults_run_the_local_classifier(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    settings = load_settings()
    assert settings.classifier == "auto" and not settings.uses_gemini
    assert settings.memory_policy == MemoryPolicy()
    assert settings.api_key_list == ()


def test_an_api_key_turns_gemini_on_unless_told_otherwise(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    assert load_settings().uses_gemini
    monkeypatch.setenv("CLASSIFIER", "local")
    assert not load_settings().uses_gemini


def test_settings_read_the_names_terraform_sets(monkeypatch):
    monkeypatch.setenv("TICKETS_TOPIC", "t-prod")
    monkeypatch.setenv("CHROMA_PORT", "443")
    monkeypatch.setenv("CHROMA_SSL", "true")
    monkeypatch.setenv("MEMORY_AGREEMENT_NEIGHBOURS", "3")
    monkeypatch.setenv("MEMORY_AGREEMENT_MIN_VOTERS", "2")
    monkeypatch.setenv("API_KEYS", f"plain, sha256:{hashlib.sha256(b'hashed').hexdigest()},")
    settings = load_settings()
    assert (settings.tickets_topic, settings.chroma_port, settings.chroma_ssl) == ("t-prod", 443, True)
    assert settings.memory_policy.agreement_neighbours == 3
    plain, hashed = settings.api_key_list
    assert (plain.digest, plain.scopes) == (hashlib.sha256(b"plain").digest(), frozenset({"admin"}))
    assert hashed.digest == hashlib.sha256(b"hashed").digest()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHROMA_PORT", "not-a-port"),
        ("CLASSIFIER", "magic"),
        ("MEMORY_AGREEMENT_SHARE", "0.2"),
        ("API_KEYS", "sha256:zz"),
        ("API_KEYS", "k=submit+launch"),
    ],
)
def test_a_bad_setting_stops_the_process_with_its_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError):
        load_settings()


def test_gemini_without_a_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("CLASSIFIER", "gemini")
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        load_settings()


def test_the_taxonomy_file_comes_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "taxonomy.json"
    path.write_text(
        json.dumps(
            {
                "categories": [{"name": "Facilities", "description": "Buildings", "assignment_group": "FM"}],
                "priorities": [{"name": "P3", "description": "normal"}],
                "assignment_groups": [{"name": "FM"}],
            }
        )
    )
    monkeypatch.setenv("TAXONOMY_FILE", str(path))
    taxonomy = bootstrap.taxonomy()
    assert taxonomy.category_names == ("Facilities",) and taxonomy.default_priority == "P3"


def test_a_broken_taxonomy_file_names_the_setting(tmp_path):
    path = tmp_path / "taxonomy.json"
    path.write_text('{"categories": []}')
    with pytest.raises(ConfigurationError, match="TAXONOMY_FILE"):
        load_taxonomy(path)


def test_an_unknown_gemini_backend_names_the_setting(monkeypatch):
    monkeypatch.setenv("GEMINI_BACKEND", "bard")
    with pytest.raises(ConfigurationError, match=r"(?i)gemini_backend"):
        load_settings()


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"GEMINI_LOCATION": "europe-west1"}, "GEMINI_PROJECT"),
        ({"GEMINI_PROJECT": "acme-prod", "GEMINI_LOCATION": " "}, "GEMINI_LOCATION"),
    ],
)
def test_vertex_without_its_project_or_location_names_the_setting(monkeypatch, environment, named):
    for name in ("GEMINI_API_KEY", "GEMINI_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GEMINI_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLASSIFIER", "gemini")
    monkeypatch.setenv("GEMINI_BACKEND", "vertex")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()
    monkeypatch.setenv("GEMINI_PROJECT", "acme-prod")
    monkeypatch.setenv("GEMINI_LOCATION", "global")
    settings = load_settings()
    assert (settings.vertex_project, settings.gemini_location) == ("acme-prod", "global")
