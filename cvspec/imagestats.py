"""Per-image statistics shared by the data report (drift baseline) and the server (live drift)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


def image_stats(img: Any) -> dict[str, float]:
    """Brightness (mean grey level, 0..1), contrast (grey std, 0..1), width and height."""
    return stats_of([grey_histogram(img)], [img.size])[0]


def grey_histogram(img: Any) -> list[int]:
    """The 256 grey-level counts of a decoded image (computed in C)."""
    counts: list[int] = (img if img.mode == "L" else img.convert("L")).histogram()
    return counts


def stats_of(
    histograms: Sequence[Sequence[int]], sizes: Sequence[tuple[int, int]]
) -> list[dict[str, float]]:
    """image_stats of several images from their grey histograms and (width, height) sizes.

    One matrix product for all of them instead of two passes over every pixel in float. The
    sums are of integers well under 2**53, so exact: the figures do not depend on the batch.
    """
    import numpy as np

    counts = np.asarray(histograms, dtype=np.float64)
    levels, squares = _levels()
    n = counts.sum(axis=1)
    mean = (counts @ levels) / n
    var = np.maximum((counts @ squares) / n - mean * mean, 0.0)
    return [
        {"brightness": m / 255.0, "contrast": v**0.5 / 255.0, "width": float(w), "height": float(h)}
        for m, v, (w, h) in zip(mean.tolist(), var.tolist(), sizes, strict=True)
    ]


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
