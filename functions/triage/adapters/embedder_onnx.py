"""all-MiniLM-L6-v2 on ONNX Runtime: the sentence-transformers model without torch in the worker.

``make model`` (``triage.offline.onnx_export``) exports the packaged weights to ONNX at build time
and checks that the vectors match sentence-transformers' before it writes the folder; nothing is
downloaded. Here the worker runs what sentence-transformers' ``encode(normalize_embeddings=True)``
does for this model: the BERT encoder, mean pooling over the attention mask, L2 normalisation,
longest texts batched first. Importing onnxruntime and tokenizers instead of torch is what makes
a worker's cold start about 1.5 s instead of 10 s and its memory about half (make bench).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

MODEL_FILE = "model.onnx"
MANIFEST = "export.json"  # written by the export: the source model's fingerprint and the checks it passed
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "model"


def bundled_folder(model_name: str) -> Path:
    """Where ``make model`` writes the export of a model (inside functions/, so it is deployed)."""
    return BUNDLED_DIR / f"{model_name.rsplit('/', 1)[-1]}-onnx"


def exported(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / MANIFEST).is_file()


class OnnxEmbedder:
    # What an instance imports before its fork. Not onnxruntime: importing it starts a thread,
    # which the forked child lacks, and its exit handler then joins whatever thread reuses that
    # thread's slot (here gRPC's timer): the serving process hung on SIGTERM until SIGKILLed.
    IMPORTS = ("numpy", "tokenizers")

    def __init__(self, model_name: str, folder: Path, *, batch_size: int = 64):
        self.name = model_name
        self.folder = folder
        self._batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def version(self) -> str:
        """The fingerprint of the sentence-transformers model it was exported from: the export
        refuses to write a model whose vectors differ from that model's, so memory entries made
        by either backend are comparable and switching backends needs no rebuild."""
        return str(self._manifest()["source_fingerprint"])

    def _manifest(self) -> dict[str, Any]:
        if not exported(self.folder):
            raise ConfigurationError(
                f"no ONNX export of embedding model {self.name!r} in {self.folder}: run `make model`, "
                "or set EMBEDDING_BACKEND=sentence-transformers"
            )
        return json.loads((self.folder / MANIFEST).read_text())

    def load(self) -> Any:
        with self._lock:
            if self._session is None:
                manifest = self._manifest()
                import onnxruntime
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=int(manifest["max_seq_length"]))
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (to the longest text of a batch)
                options = onnxruntime.SessionOptions()
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Idle pool threads sleep instead of spinning: the worker shares its CPUs with its
                # own I/O threads (and, locally, with the emulators).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._tokenizer = tokenizer
                self._session = onnxruntime.InferenceSession(
                    str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
                )
            return self._session

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def encode(self, texts: Sequence[str]) -> Any:
        """The vectors as one float32 array, a row per text in the caller's order."""
        import numpy as np

        session = self.load()
        texts = list(texts)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first: less padding
        vectors = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            chosen = order[start : start + self._batch_size]
            batch = self._encode(session, [texts[i] for i in chosen])
            if vectors.shape[1] == 0:
                vectors = np.empty((len(texts), batch.shape[1]), dtype=np.float32)
            vectors[chosen] = batch
        return vectors

    def _encode(self, session: Any, texts: list[str]) -> Any:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = session.run(
            None,
            {
                "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": mask,
                "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
            },
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
