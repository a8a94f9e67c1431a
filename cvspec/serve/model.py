"""The exported model: an onnxruntime session, its labels, its preprocessing, its identity."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvspec.errors import CvspecError
from cvspec.preprocess import Preprocess

FILES = ("model.onnx", "labels.json", "preprocess.json")
SETTING = "serve.device"


@dataclass(frozen=True)
class ModelFiles:
    """What an export folder holds, read and checked (cheap: no onnxruntime)."""

    path: Path
    labels: tuple[str, ...]
    pre: Preprocess
    version: str  # first 12 hex digits of model.onnx's sha256


def read_model_dir(path: Path) -> ModelFiles:
    """Check an export folder and read its labels and preprocessing; a CvspecError says why not."""
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise CvspecError(
            f"{path}: no exported model here (missing {', '.join(missing)}); "
            "run `cvspec run SPEC --stage export` first"
        )
    try:
        labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))
        pre = Preprocess.from_json(json.loads((path / "preprocess.json").read_text("utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise CvspecError(f"{path}: labels.json or preprocess.json is not valid: {exc}") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or not labels:
        raise CvspecError(f"{path / 'labels.json'}: must be a non-empty list of class names")
    digest = hashlib.sha256((path / "model.onnx").read_bytes()).hexdigest()
    return ModelFiles(path, tuple(labels), pre, digest[:12])


class Model:
    """An onnxruntime session over one export folder; `run` maps a batch to raw outputs."""

    def __init__(self, files: ModelFiles, threads: int = 0, device: str = "cpu") -> None:
        import onnxruntime as ort

        from cvspec.providers import providers, started_on

        chosen = providers(device, SETTING)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle ORT threads must not spin: the event loop and the decoders share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = started_on(
            ort.InferenceSession(str(files.path / "model.onnx"), options, providers=chosen),
            chosen,
            SETTING,
        )
        self.files = files
        first = self.session.get_inputs()[0]
        self.input_name: str = first.name
        batch_dim = first.shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) else None
        rank = len(self.session.get_outputs()[0].shape)
        self.task = "detection" if rank == 3 else "classification"

    def run(self, batch: Any) -> Any:
        """Raw model output for a float32 batch of shape (N, 3, S, S)."""
        return self.session.run(None, {self.input_name: batch})[0]


def probabilities(out: Any) -> Any:
    """Class probabilities of a classifier's output rows: softmax unless already a distribution."""
    import numpy as np

    out = np.asarray(out, dtype=np.float64)
    if out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
