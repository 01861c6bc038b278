"""The deployed functions' environment: functions/requirements.txt and nothing more. The local
stack starts its functions under ``emulators/deployed/sitecustomize.py``, which refuses what
that lock leaves out; here that guard is checked, and both functions start under it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from triage.adapters import embedder_onnx

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "emulators" / "deployed"
needs_export = pytest.mark.skipif(
    not embedder_onnx.exported(embedder_onnx.bundled_folder("all-MiniLM-L6-v2")), reason="no ONNX export: make model"
)


def deployed(code: str, **settings: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter as the local stack starts a function."""
    environment = {**os.environ, "PYTHONPATH": str(GUARD), "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING", **settings}
    command = [sys.executable, "-c", code]
    return subprocess.run(command, cwd=ROOT / "functions", env=environment, capture_output=True, text=True, timeout=120)


def test_what_the_deployed_lock_leaves_out_is_refused_and_named():
    probe = """
import importlib
for name in ("torch", "sentence_transformers", "transformers.utils", "pytest"):
    try:
        importlib.import_module(name)
        print("imported", name)
    except ModuleNotFoundError as error:
        print("refused", name, "|", error)
import chromadb, functions_framework, google.cloud.firestore, google.genai, onnxruntime, tokenizers, triage
print("deployed ones import")
"""
    run = deployed(probe)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    refused = [line for line in lines if line.startswith("refused")]
    assert [line.split()[1] for line in refused] == ["torch", "sentence_transformers", "transformers.utils", "pytest"]
    assert all("is not in functions/requirements.txt" in line for line in refused)
    assert lines[-1] == "deployed ones import"
    assert importlib.util.find_spec("torch") is not None  # refused, not missing: .venv has the model extra


@needs_export
def test_both_functions_start_on_what_is_deployed_and_the_worker_embeds_with_onnx():
    api = deployed("import main; from triage import bootstrap; bootstrap.http_app(); print('api ready')",
                   FUNCTION_TARGET="api")  # fmt: skip
    assert api.returncode == 0 and api.stdout.strip() == "api ready", api.stderr
    worker = deployed(
        "import main; from triage import bootstrap; print(len(bootstrap.embedder().embed(['VPN drops'])[0]))",
        FUNCTION_TARGET="process_ticket",
        EMBEDDING_BACKEND="auto",
    )
    assert worker.returncode == 0 and worker.stdout.strip() == "384", worker.stderr


def test_a_deployed_worker_asked_for_sentence_transformers_stops_at_start_and_says_why():
    worker = deployed("import main", FUNCTION_TARGET="process_ticket", EMBEDDING_BACKEND="sentence-transformers")
    assert worker.returncode != 0
    assert "sentence-transformers is not installed here" in worker.stderr
    assert "make model" in worker.stderr
