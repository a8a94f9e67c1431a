"""Input drift on clean traffic: no gauge until the window is full, and then within the bound.

The real DriftMonitor on the real digits images (the example project's data): a window of
clean images drifts from the training mean by chance alone, about 1/sqrt(n) training standard
deviations, so a gauge over the first few images after a restart fired drift alerts.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import REPO

from cvspec.serve import metric_names as m
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.drift import MIN_IMAGES, WINDOW, DriftMonitor
from cvspec.serve.launch import ServerProcess

TRIALS = 2000


def digits_stats() -> list[dict[str, float]]:
    """image_stats of every digits image, as `cvspec init --example digits` writes them."""
    from PIL import Image

    from cvspec.examples import HERE
    from cvspec.imagestats import image_stats

    with np.load(HERE / "digits.npz") as npz:
        images = npz["images"]
    grey = ((images.astype(np.uint16) * 255 + 8) // 16).astype(np.uint8)  # as write_digits
    return [image_stats(Image.fromarray(pixels)) for pixels in grey]


def example_bound() -> float:
    """The example spec's brightness-drift alert bound (specs/digits.yaml: InputDrift)."""
    from cvspec.spec import load_spec

    spec = load_spec(REPO / "specs/digits.yaml").spec
    (alert,) = [a for a in spec.monitor.alerts if a.metric == "brightness_drift"]
    return float(alert.max)


@pytest.fixture(scope="module")
def clean() -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """A training baseline from 70% of the digits (like the data stage's stats.json) and every
    digits image as clean live traffic."""
    from cvspec.imagestats import summarize

    stats = digits_stats()
    train = np.random.default_rng(0).permutation(len(stats))[: len(stats) * 7 // 10]
    baseline = {k: summarize([stats[i][k] for i in train]) for k in m.DRIFT_STATS}
    return baseline, stats


def drifted(baseline: Any, stats: list[dict[str, float]], n: int, bound: float) -> float:
    """The share of TRIALS random windows of n clean images whose brightness drift passes bound."""
    rng = np.random.default_rng(1)
    over = 0
    for _ in range(TRIALS):
        monitor = DriftMonitor(baseline, window=n, min_images=n)
        for index in rng.choice(len(stats), n, replace=False):
            monitor.add(stats[index])
        over += monitor.drift()["brightness"] > bound
    return over / TRIALS


def test_clean_images_stay_under_the_example_bound_once_the_window_is_full(clean: Any) -> None:
    baseline, stats = clean
    bound = example_bound()
    assert bound == 0.2
    assert MIN_IMAGES == WINDOW  # published over the whole window only
    assert drifted(baseline, stats, 5, bound) > 0.5  # what a gauge over 5 images showed
    assert 0.02 < drifted(baseline, stats, 100, bound) < 0.08  # 100 would still page often
    assert drifted(baseline, stats, MIN_IMAGES, bound) < 0.003  # measured: 0 of 2000 here


def test_no_drift_until_the_window_is_full(clean: Any) -> None:
    baseline, stats = clean
    monitor = DriftMonitor(baseline)
    rng = np.random.default_rng(2)
    for count, index in enumerate(rng.choice(len(stats), 2 * WINDOW, replace=False), 1):
        monitor.add(stats[index])
        drift = monitor.drift()
        assert (drift != {}) == (count >= MIN_IMAGES), count
        if drift:
            assert set(drift) == set(m.DRIFT_STATS) and drift["brightness"] < example_bound()


def grey(level: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (level, level, level)).save(buf, "PNG")
    return buf.getvalue()


def drift_series(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.labels["stat"]: s.value
        for family in text_string_to_metric_families(httpx.get(url).text)
        for s in family.samples
        if s.name == m.DRIFT
    }


@pytest.mark.slow
def test_each_worker_publishes_drift_only_over_its_own_full_window(tmp_path: Path) -> None:
    """Two workers, two windows: under WINDOW images in all, no worker has a full one; with
    2 x WINDOW - 1, one of them has (the max of the full ones is what /metrics shows)."""
    import json

    export = write_demo_model(tmp_path / "runs/demo/export", ["a", "b"], image_size=8)
    stats = {
        s: {"mean": 0.5, "std": 0.1, "p5": 0, "p50": 0.5, "p95": 1, "count": 10}
        for s in m.DRIFT_STATS
    }
    (tmp_path / "runs/demo/data").mkdir(parents=True)
    (tmp_path / "runs/demo/data/stats.json").write_text(json.dumps(stats))
    args = ["--model-dir", str(export), "--workers", "2", "--threads", "1"]
    with ServerProcess(args) as server, httpx.Client() as client:

        def send(count: int) -> None:
            sent = 0
            while sent < count:
                answer = client.post(  # a new connection each: either worker may take it
                    f"{server.url}/predict",
                    content=grey(200),
                    headers={"content-type": "image/png", "connection": "close"},
                )
                assert answer.status_code in (200, 503)  # 503: the other worker still loads
                sent += answer.status_code == 200

        send(WINDOW - 1)
        assert drift_series(server.metrics_url) == {}
        send(WINDOW)
        drift = drift_series(server.metrics_url)
    assert set(drift) == set(m.DRIFT_STATS)
    assert drift["brightness"] == pytest.approx((200 / 255 - 0.5) / 0.1)
