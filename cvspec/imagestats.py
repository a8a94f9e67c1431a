"""Per-image statistics shared by the data report (drift baseline) and the server (live drift)."""

from __future__ import annotations

import functools
from typing import Any


def image_stats(img: Any) -> dict[str, float]:
    """Brightness (mean grey level, 0..1), contrast (grey std, 0..1), width and height.

    From the grey histogram (256 counts, computed in C): two dot products instead of two
    passes over every pixel in float.
    """
    import numpy as np

    levels, squares = _levels()
    counts = np.asarray(img.convert("L").histogram(), dtype=np.float64)
    n = counts.sum()
    mean = float(counts @ levels) / n
    var = max(float(counts @ squares) / n - mean * mean, 0.0)
    return {
        "brightness": mean / 255.0,
        "contrast": var**0.5 / 255.0,
        "width": float(img.width),
        "height": float(img.height),
    }


@functools.cache
def _levels() -> tuple[Any, Any]:
    import numpy as np

    levels = np.arange(256, dtype=np.float64)
    return levels, levels * levels


def summarize(values: list[float]) -> dict[str, float]:
    """mean, std, p5, p50, p95 of one statistic over many images (the drift baseline)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"count": 0.0, "mean": 0.0, "std": 0.0, "p5": 0.0, "p50": 0.0, "p95": 0.0}
    return {
        "count": float(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "p5": float(np.percentile(arr, 5)),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
    }
