"""Latency and throughput of the exported ONNX model with onnxruntime, as the spec asks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cvspec.providers import providers, started_on

SETTING = "evaluate.latency.device"


def session(path: Path, threads: int | None = None, device: str = "cpu") -> Any:
    """An onnxruntime session on the benchmark device (see cvspec.providers)."""
    import onnxruntime as ort

    chosen = providers(device, SETTING)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    return started_on(sess, chosen, SETTING)


def measure(path: Path, sample: Any, bench: Any) -> dict[str, float]:
    """p50/p95 latency (ms) of `bench.batch` images per call, and images/s over the timed calls."""
    import numpy as np

    sess = session(path, bench.threads, bench.device)
    name = sess.get_inputs()[0].name
    reps = -(-bench.batch // len(sample))
    batch = np.ascontiguousarray(np.concatenate([sample] * reps)[: bench.batch])
    for _ in range(bench.warmup):
        sess.run(None, {name: batch})
    times = []
    for _ in range(bench.iterations):
        started = time.perf_counter()
        sess.run(None, {name: batch})
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000.0
    return {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "throughput_ips": float(bench.batch * len(times) / sum(times)),
        "latency_batch": float(bench.batch),
    }


def model_size_mb(folder: Path, files: list[str]) -> float:
    """Size of the largest exported model file, in MB (10^6 bytes)."""
    return max((folder / f).stat().st_size for f in files) / 1e6
