"""How one server runs: model folder, address, batching and input limits (from spec or flags)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

QUEUE_BATCHES = 8  # the queue holds this many full batches (at least MIN_QUEUE images)
MIN_QUEUE = 64
REQUESTS_PER_QUEUED_IMAGE = 4  # /predict requests in flight per image the queue holds
DECODE_IMAGES = 2  # images of max_pixels that may be decoded at once (admission.py)


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs; built from a spec's `serve:` section or from CLI flags."""

    model_dir: Path
    baseline: Path | None = None  # data/stats.json of the training data; None: no drift gauges
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_port: int | None = 9090  # None: /metrics on the API port only
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_body_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    queue_size: int = 0  # 0: max(MIN_QUEUE, QUEUE_BATCHES * max_batch)
    threads: int = 0  # onnxruntime intra-op threads per worker; 0: see model_threads
    device: str = "cpu"  # "cpu" or "cuda": where onnxruntime runs the model
    workers: int = 1
    box_confidence: float = 0.25  # detection: the least confidence a box is answered with
    box_iou: float = 0.45  # detection: non-maximum suppression overlap
    name: str = ""  # model name in cvspec_model_info; "": the model folder's parent's name

    @property
    def model_threads(self) -> int:
        """onnxruntime intra-op threads in each worker: the setting; unset, several workers
        share the CPUs the server may use (its affinity) evenly, and one worker leaves it to
        onnxruntime (0: one per physical core). Every worker taking every core would run
        workers x cores threads."""
        if self.threads or self.workers <= 1:
            return self.threads
        from cvspec import cpus

        return cpus.threads(self.workers)

    @property
    def queue_capacity(self) -> int:
        """Images that may wait at once; more -> 503."""
        return self.queue_size or max(MIN_QUEUE, QUEUE_BATCHES * self.max_batch)

    @property
    def request_capacity(self) -> int:
        """/predict requests in flight at once (read, decoded, or waiting for their batch); more
        -> 503. With max_body_bytes it bounds the request bodies held in memory."""
        return REQUESTS_PER_QUEUED_IMAGE * self.queue_capacity

    @property
    def decode_budget(self) -> int:
        """Pixels that may be decoded at once; up to queue_capacity requests wait, more -> 503.
        Decoding takes 5 to 9 bytes a pixel at its peak: this bounds the decoded images' memory."""
        return DECODE_IMAGES * self.max_pixels

    def to_json(self) -> str:
        """For worker processes (passed through the environment)."""
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        data["baseline"] = str(self.baseline) if self.baseline else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Inverse of to_json."""
        data: dict[str, Any] = json.loads(text)
        data["model_dir"] = Path(data["model_dir"])
        data["baseline"] = Path(data["baseline"]) if data["baseline"] else None
        return cls(**data)


def from_spec(spec: Any, runs: Path) -> ServeConfig:
    """The config a spec describes, serving runs/<project>/export with the data stage's baseline."""
    serve = spec.serve
    threads = spec.evaluate.latency.threads or 0
    return ServeConfig(
        model_dir=runs / "export",
        baseline=next(
            (
                p
                for p in (runs / "export" / "stats.json", runs / "data" / "stats.json")
                if p.is_file()
            ),
            None,
        ),
        port=serve.port,
        metrics_port=serve.metrics_port,
        max_batch=serve.max_batch,
        max_wait_ms=serve.max_wait_ms,
        max_body_bytes=int(serve.max_image_bytes),
        max_pixels=serve.max_pixels,
        threads=threads,
        device=serve.device,
        workers=serve.workers,
        box_confidence=serve.box_confidence,
        box_iou=serve.box_iou,
        name=str(spec.project.name),
    )


def override(config: ServeConfig, **changes: Any) -> ServeConfig:
    """A copy with the given fields changed; None values leave a field as it is."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
