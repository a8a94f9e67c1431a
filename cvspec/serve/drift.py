"""Input drift: the live mean of each image statistic against the training baseline."""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path

from cvspec.serve.metric_names import DRIFT_STATS

WINDOW = 256  # images in the live window
# Drift is published only over a full window. On clean images the live mean is off by about
# 1/sqrt(n) training standard deviations by chance alone: on the digits training images, the
# brightness drift of 5 images passes the example spec's bound (0.2) 2 times in 3, of 100
# images 4% of the time, of 256 under 0.1% (tests/test_serve_drift.py). A server fresh from
# a restart, or one with little traffic, shows no drift until its window is full; each worker
# process keeps its own window and publishes once that one is full.
MIN_IMAGES = WINDOW
# A floor under the training std, so a constant statistic (all images 28 px wide) still works.
MIN_SCALE = {"brightness": 0.01, "contrast": 0.01, "width": 1.0, "height": 1.0}
log = logging.getLogger("cvspec.serve")
Baseline = dict[str, dict[str, float]]


def load_baseline(path: Path | None) -> Baseline | None:
    """data/stats.json as written by the data stage; None (and a warning) when unusable."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        baseline = {s: {k: float(v) for k, v in data[s].items()} for s in DRIFT_STATS}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("drift baseline %s not usable (%s); drift gauges stay off", path, exc)
        return None
    if baseline["brightness"].get("count", 0) <= 0:
        log.warning("drift baseline %s has no images; drift gauges stay off", path)
        return None
    return baseline


class DriftMonitor:
    """The last WINDOW images' statistics; drift = |live mean - training mean| / training std,
    once the window holds `min_images` (MIN_IMAGES: the whole window)."""

    def __init__(
        self, baseline: Baseline | None, window: int = WINDOW, min_images: int = MIN_IMAGES
    ) -> None:
        self.baseline = baseline
        self._window: deque[dict[str, float]] = deque(maxlen=window)
        self._sums = dict.fromkeys(DRIFT_STATS, 0.0)
        self.min_images = min(min_images, window)

    @property
    def images(self) -> int:
        """Images in the baseline (0: none)."""
        return int(self.baseline["brightness"].get("count", 0)) if self.baseline else 0

    def add(self, stats: dict[str, float]) -> None:
        """Add one image's statistics (the oldest leaves a full window)."""
        if len(self._window) == self._window.maxlen:
            old = self._window[0]
            for key in DRIFT_STATS:
                self._sums[key] -= old[key]
        self._window.append(stats)
        for key in DRIFT_STATS:
            self._sums[key] += stats[key]

    def drift(self) -> dict[str, float]:
        """Drift per statistic; empty without a baseline or before min_images images."""
        if self.baseline is None or len(self._window) < max(self.min_images, 1):
            return {}
        n = len(self._window)
        out = {}
        for key in DRIFT_STATS:
            base = self.baseline[key]
            scale = max(base.get("std", 0.0), MIN_SCALE[key])
            out[key] = abs(self._sums[key] / n - base["mean"]) / scale
        return out
