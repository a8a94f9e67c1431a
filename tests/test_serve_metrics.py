"""The server's /metrics: every name of the contract, exact counts, and drift against a baseline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from helpers import health_once_load_failed, slow_upload

from cvspec.imagestats import image_stats
from cvspec.serve import metric_names as m
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.drift import WINDOW
from cvspec.serve.launch import ServerProcess

LABELS = ["red", "green", "blue"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


def grey(level: int, size: tuple[int, int] = (20, 10)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (level, level, level)).save(buf, "PNG")
    return buf.getvalue()


def post(url: str, body: bytes, ctype: str = "image/png") -> httpx.Response:
    return httpx.post(f"{url}/predict", content=body, headers={"content-type": ctype})


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = write_demo_model(tmp_path / "runs/demo/export", LABELS, image_size=16)
    stats = {
        "brightness": {"mean": 0.5, "std": 0.1, "p5": 0.3, "p50": 0.5, "p95": 0.7, "count": 50},
        "contrast": {"mean": 0.0, "std": 0.0, "p5": 0, "p50": 0, "p95": 0, "count": 50},
        "width": {"mean": 20.0, "std": 0.0, "p5": 20, "p50": 20, "p95": 20, "count": 50},
        "height": {"mean": 12.0, "std": 4.0, "p5": 8, "p50": 12, "p95": 16, "count": 50},
    }
    (tmp_path / "runs/demo/data").mkdir(parents=True)
    (tmp_path / "runs/demo/data/stats.json").write_text(json.dumps(stats))
    return folder


def test_metrics_count_what_happened(export: Path) -> None:
    levels = [100, 140, 200]
    with ServerProcess(["--model-dir", str(export), "--threads", "1"]) as server:
        for level in levels:
            assert post(server.url, grey(level)).status_code == 200
        assert post(server.url, b"junk").status_code == 400
        assert post(server.url, b"{}", "application/json").status_code == 415
        assert httpx.get(f"{server.url}/nothing-here").status_code == 404
        assert httpx.get(f"{server.url}/predict").status_code == 405  # POST alone skips Starlette
        s = scrape(server.metrics_url)
        # then a full drift window: the gauges appear only over WINDOW images
        sent = levels + [levels[i % 3] for i in range(WINDOW - len(levels))]
        with httpx.Client() as client:
            for level in sent[len(levels) :]:
                answer = client.post(
                    f"{server.url}/predict",
                    content=grey(level),
                    headers={"content-type": "image/png"},
                )
                assert answer.status_code == 200
        metrics_port = scrape(server.metrics_url)
        api_port = httpx.get(f"{server.url}/metrics")

    assert value(s, m.REQUESTS, route="/predict", status="200") == 3
    assert value(s, m.REQUESTS, route="/predict", status="400") == 1
    assert value(s, m.REQUESTS, route="/predict", status="415") == 1
    assert value(s, m.REQUESTS, route="other", status="404") == 1
    assert value(s, m.REQUESTS, route="/predict", status="405") == 1
    assert value(s, f"{m.REQUEST_SECONDS}_count", route="/predict") == 6
    assert value(s, f"{m.SERVER_SECONDS}_count") == 4  # the 415 is refused before its body
    assert value(s, f"{m.BATCH_SIZE}_count") == 3 and value(s, f"{m.BATCH_SIZE}_sum") == 3
    assert value(s, f"{m.CONFIDENCE}_count") == 3
    assert sum(v for (n, _), v in s.items() if n == m.PREDICTIONS) == 3
    assert value(s, f"{m.INPUT_WIDTH}_sum") == 60 and value(s, f"{m.INPUT_HEIGHT}_sum") == 30
    assert value(s, m.QUEUE_DEPTH) == 0
    assert value(s, m.BASELINE_IMAGES) == 50
    assert value(s, m.MODEL_INFO, name="demo", version=_version(export), task="classification") == 1
    assert not [k for k in s if k[0] == m.DRIFT]  # 3 images: noise, not drift

    for name in m.EXPORTED:  # the whole contract the rules and dashboard rely on
        assert any(n.startswith(name) for n, _ in metrics_port), name
    # the API port is the published one: its clients do not read the server's metrics
    assert api_port.status_code == 404
    s = metrics_port
    assert value(s, m.REQUESTS, route="/predict", status="200") == WINDOW
    assert value(s, f"{m.INPUT_WIDTH}_sum") == 20 * WINDOW

    from PIL import Image

    live = [image_stats(Image.open(io.BytesIO(grey(level)))) for level in sent]
    base = {
        "brightness": (0.5, 0.1),
        "contrast": (0.0, 0.01),
        "width": (20.0, 1.0),
        "height": (12.0, 4.0),
    }  # (mean, std floored at MIN_SCALE)
    for stat, (mean, std) in base.items():
        live_mean = sum(x[stat] for x in live) / len(live)
        assert value(s, m.DRIFT, stat=stat) == pytest.approx(abs(live_mean - mean) / std), stat
    assert value(s, m.DRIFT, stat="height") == pytest.approx(0.5)  # |10 - 12| / 4


def test_without_a_metrics_port_the_api_port_serves_metrics(export: Path) -> None:
    """--metrics-port 0: one port for all, /metrics on it (what a separate port would serve)."""
    import subprocess
    import sys
    import time

    from cvspec.serve.launch import free_port

    port = free_port()
    args = ["--model-dir", str(export), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvspec", "serve", *args, "--metrics-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert post(url, grey(100)).status_code == 200
        s = scrape(f"{url}/metrics")
    finally:
        proc.terminate()
        proc.wait(15)
    assert value(s, m.REQUESTS, route="/predict", status="200") == 1
    assert value(s, m.MODEL_INFO, name="demo", version=_version(export), task="classification") == 1
    assert value(s, m.BASELINE_IMAGES) == 50


def test_a_slow_upload_stretches_the_request_latency_not_the_server_time(export: Path) -> None:
    """What the latency alerts read is the server's own part: from the body received on."""
    with ServerProcess(["--model-dir", str(export), "--threads", "1"]) as server:
        assert slow_upload(server.port, grey(100), pieces=4, gap_s=0.15) == 200
        s = scrape(server.metrics_url)
    assert value(s, f"{m.REQUEST_SECONDS}_count", route="/predict") == 1
    assert value(s, f"{m.REQUEST_SECONDS}_sum", route="/predict") >= 0.45  # 3 gaps of 0.15 s
    assert value(s, f"{m.SERVER_SECONDS}_count") == 1
    assert value(s, f"{m.SERVER_SECONDS}_sum") < 0.2  # decode + batch wait + a tiny model


def test_a_model_that_fails_to_load_leaves_metrics_up_without_model_info(tmp_path: Path) -> None:
    """What the ModelNotLoaded alert watches: up (a /metrics answer) without cvspec_model_info."""
    import subprocess
    import sys

    from cvspec.serve.launch import free_port

    export = write_demo_model(tmp_path / "model", LABELS, image_size=16)
    (export / "model.onnx").write_bytes(b"not an ONNX model")
    port, metrics_port = free_port(), free_port()
    args = ["--model-dir", str(export), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvspec", "serve", *args, "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = health_once_load_failed(port, proc)
        assert health is not None and health.status_code == 503, health
        assert health.json()["status"] == "failed" and proc.poll() is None  # it stays up
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        proc.terminate()
        proc.wait(15)
    names = {name for name, _ in samples}
    assert m.MODEL_INFO not in names and m.REQUESTS in names


def test_without_a_baseline_there_are_no_drift_gauges(tmp_path: Path) -> None:
    export = write_demo_model(tmp_path / "model", LABELS, image_size=16)
    with ServerProcess(["--model-dir", str(export), "--threads", "1"]) as server:
        assert post(server.url, grey(50)).status_code == 200
        s = scrape(server.metrics_url)
        log = server.log()
    assert value(s, m.BASELINE_IMAGES) == 0  # what DriftBaselineMissing watches
    assert not [k for k in s if k[0] == m.DRIFT]
    assert log.count("WARNING:") == 1, log  # said once at start, not silently off
    assert "no drift baseline" in log and "drift alerts cannot fire" in log


def _version(export: Path) -> str:
    import hashlib

    return hashlib.sha256((export / "model.onnx").read_bytes()).hexdigest()[:12]


def test_the_start_log_says_where_the_metrics_are(tmp_path: Path) -> None:
    """The API port has no /metrics while there is a metrics port: the start says where it is."""
    export = write_demo_model(tmp_path / "model", LABELS, image_size=16)
    args = ["--model-dir", str(export), "--threads", "1"]
    with ServerProcess(args, env={"CVSPEC_LOG_LEVEL": "info"}) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        log = server.log()
    assert f"Prometheus metrics on {server.metrics_url}" in log, log
