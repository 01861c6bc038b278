"""The worker's ONNX embedder against the sentence-transformers model it was exported from, and
how EMBEDDING_BACKEND picks between them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from triage.adapters import embedder_onnx
from triage.adapters.embedder import SentenceTransformerEmbedder, build_embedder
from triage.adapters.embedder_onnx import OnnxEmbedder
from triage.errors import ConfigurationError

MODEL = "all-MiniLM-L6-v2"
EXPORT = embedder_onnx.bundled_folder(MODEL)
needs_export = pytest.mark.skipif(not embedder_onnx.exported(EXPORT), reason="no ONNX export: run `make model`")

# More texts than a batch, of mixed lengths (one over the 256-token limit), so that sorting by
# length and putting the batches back in order is exercised.
TEXTS = [
    "VPN disconnects every hour",
    "Passwort zurücksetzen bitte",
    "disk full on /var " * 200,
    "",
    "打印机无法连接到网络",
    "Outlook crashes on start after the latest update; safe mode works.",
    "new laptop for the intern starting Monday",
    "SAP invoice posting fails with error F5 155 for company code 1000",
    "ok",
    "Teams camera is black in meetings but works in the Camera app",
]


@pytest.fixture(scope="module")
def reference():
    model = SentenceTransformerEmbedder(MODEL, batch_size=4)
    return np.asarray(model.embed(TEXTS))


@needs_export
def test_the_export_gives_sentence_transformers_vectors_in_the_callers_order(reference):
    onnx = OnnxEmbedder(MODEL, EXPORT, batch_size=4)
    got = np.asarray(onnx.embed(TEXTS))
    assert got.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(got - reference).max() < 1e-5
    assert onnx.embed([]) == []


@needs_export
def test_both_backends_stamp_the_memory_with_one_version():
    """Entries embedded by either are comparable: switching backends needs no rebuild."""
    assert OnnxEmbedder(MODEL, EXPORT).version == SentenceTransformerEmbedder(MODEL).version
    assert isinstance(build_embedder("auto", MODEL), OnnxEmbedder)
    assert isinstance(build_embedder("onnx", MODEL), OnnxEmbedder)


def test_without_an_export_onnx_is_a_configuration_error_and_auto_uses_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(embedder_onnx, "BUNDLED_DIR", tmp_path)
    with pytest.raises(ConfigurationError, match="make model"):
        build_embedder("onnx", MODEL)
    assert isinstance(build_embedder("auto", MODEL), SentenceTransformerEmbedder)
    assert isinstance(build_embedder("sentence-transformers", MODEL), SentenceTransformerEmbedder)
    with pytest.raises(ConfigurationError, match="make model"):
        OnnxEmbedder(MODEL, tmp_path / "nothing").embed(["x"])


@needs_export
def test_an_export_of_another_model_is_never_used(tmp_path, monkeypatch):
    folder = tmp_path / f"{MODEL}-onnx"
    shutil.copytree(EXPORT, folder)
    manifest = json.loads((folder / embedder_onnx.MANIFEST).read_text())
    (folder / embedder_onnx.MANIFEST).write_text(json.dumps({**manifest, "source_fingerprint": "0123456789ab"}))
    monkeypatch.setattr(embedder_onnx, "BUNDLED_DIR", tmp_path)
    with pytest.raises(ConfigurationError, match="another model"):
        build_embedder("onnx", MODEL)
    assert isinstance(build_embedder("auto", MODEL), SentenceTransformerEmbedder)


def test_an_export_that_differs_from_sentence_transformers_is_never_written(tmp_path):
    """The check before the rename: at a tolerance of 0 the export's float differences (about 1e-7)
    fail it, and neither the folder nor its staging copy is left behind."""
    from triage.offline.onnx_export import export

    out = tmp_path / "model" / f"{MODEL}-onnx"
    with pytest.raises(SystemExit, match="differs from sentence-transformers"):
        export(MODEL, None, out, tolerance=0.0)
    assert list((tmp_path / "model").iterdir()) == []
