"""End to end: a real Prometheus scrapes a real server with the generated config and rules."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import MINIMAL_SPEC, cvspec, fill_drift_window, project, slow_upload, tool

from cvspec.generate.render import dump_yaml
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess, free_port

SPEC = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}") + (
    "evaluate: {gates: {latency_p95_ms: {max: 20}}}\n"
)
DEADLINE_S = 90


def load(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (12, 12), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    """The generated monitoring config, ports rewritten, scraping a live server every second."""
    binary = tool("prometheus", "apt-get install -y prometheus prometheus-alertmanager")
    root = project(tmp_path / "repo", SPEC)
    assert cvspec("build", cwd=root).code == 0
    generated = root / "generated/demo/monitoring"
    export = write_demo_model(root / "runs/demo/export", ["red", "green", "blue"], image_size=8)
    stats = {
        s: {"mean": 0.5, "std": 0.1, "p5": 0, "p50": 0, "p95": 1, "count": 10}
        for s in ("brightness", "contrast", "width", "height")
    }
    (root / "runs/demo/data").mkdir(parents=True)
    (root / "runs/demo/data/stats.json").write_text(json.dumps(stats))
    with ServerProcess(["--model-dir", str(export), "--threads", "1"]) as server:
        config = load(generated / "prometheus.yml")
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config.pop("alerting")  # no Alertmanager here; the rules still evaluate
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [
            f"127.0.0.1:{server.metrics_port}"
        ]
        conf_dir = tmp_path / "prometheus"
        conf_dir.mkdir()
        (conf_dir / "prometheus.yml").write_text(dump_yaml(config))
        shutil.copy(generated / "rules.yml", conf_dir / "rules.yml")
        shutil.copy(generated / "grafana/dashboards/demo.json", conf_dir / "dashboard.json")
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={conf_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                yield f"http://127.0.0.1:{port}", server
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(15)


def query_until(base: str, promql: str, check: Any) -> list[dict[str, Any]]:
    """Poll Prometheus' HTTP API until `check(result)` holds; fail after DEADLINE_S."""
    deadline, result = time.monotonic() + DEADLINE_S, None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
            result = answer.json()["data"]["result"] if answer.status_code == 200 else None
        except httpx.TransportError:
            result = None
        if result is not None and check(result):
            return list(result)
        time.sleep(0.5)
    raise AssertionError(f"{promql}: still {result} after {DEADLINE_S} s")


def values(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


@pytest.mark.slow
def test_prometheus_sees_what_the_server_did(
    prometheus: tuple[str, ServerProcess], tmp_path: Path
) -> None:
    base, server = prometheus
    up = query_until(base, 'up{job="demo"}', lambda r: len(r) == 1)  # scraped once before traffic
    assert up[0]["value"][1] == "1"
    for color in [(200, 0, 0), (200, 0, 0), (0, 0, 200)]:
        ok = httpx.post(
            f"{server.url}/predict", content=png(color), headers={"content-type": "image/png"}
        )
        assert ok.status_code == 200
    assert (
        httpx.post(
            f"{server.url}/predict", content=b"junk", headers={"content-type": "image/png"}
        ).status_code
        == 400
    )
    assert (
        httpx.post(
            f"{server.url}/predict", content=b"{}", headers={"content-type": "application/json"}
        ).status_code
        == 415
    )

    for _ in range(3):  # clients on a slow link: 4 pieces 0.15 s apart, 0.45 s at least
        assert slow_upload(server.port, png((0, 200, 0)), pieces=4, gap_s=0.15) == 200

    sel = 'job="demo",route="/predict"'
    statuses = query_until(
        base,
        f"cvspec_requests_total{{{sel}}}",
        lambda r: values(r, "status") == {"200": 6, "400": 1, "415": 1},
    )
    assert {r["metric"]["instance"] for r in statuses} == {f"127.0.0.1:{server.metrics_port}"}
    classes = query_until(
        base,
        'cvspec_predictions_total{job="demo"}',
        lambda r: values(r, "class") == {"red": 2, "green": 3, "blue": 1},
    )
    assert len(classes) == 3  # every class of labels.json, from the start
    info = query_until(base, 'cvspec_model_info{job="demo"}', lambda r: len(r) == 1)
    assert info[0]["metric"]["name"] == "demo" and info[0]["metric"]["task"] == "classification"
    # the recording rules run on the scraped series (a rate needs two scrapes after the requests)
    query_until(base, 'job:cvspec_requests:rate_5m{job="demo"}', lambda r: len(r) == 1)
    # the slow uploads stretch the requests (the clients' view, on the dashboard), but the
    # latency alerts read the server's own time, from the body received to the answer
    request_p95 = (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(cvspec_request_duration_seconds_bucket{{{sel}}}[5m])))"
    )
    query_until(base, request_p95, lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0.3)
    query_until(
        base,
        'cvspec_server_duration_seconds_count{job="demo"}',
        lambda r: len(r) == 1 and float(r[0]["value"][1]) == 7,
    )  # not the 415: refused before its body
    query_until(
        base,
        'job:cvspec_server_duration_seconds:p95_5m{job="demo"}',
        lambda r: len(r) == 1 and 0 < float(r[0]["value"][1]) < 0.3,
    )
    no_drift = query_until(base, 'cvspec_input_drift{job="demo"}', lambda r: True)
    assert no_drift == []  # 6 images are no full window: no gauge
    fill_drift_window(server.url, png((0, 200, 0)))
    drift = query_until(base, 'cvspec_input_drift{job="demo"}', lambda r: len(r) == 4)
    assert set(values(drift, "stat")) == {"brightness", "contrast", "width", "height"}
    # the dashboard's batch-size panel, as Grafana would ask: every batch held one image
    board = json.loads((tmp_path / "prometheus/dashboard.json").read_text())
    (batch,) = [p for p in board["panels"] if p["title"] == "Batch size"]
    for target in batch["targets"]:
        expr = (
            target["expr"]
            .replace("$job", "demo")
            .replace("$instance", ".*")
            .replace("$__rate_interval", "5m")
        )
        assert query_until(base, expr, lambda r: len(r) == 1)[0]["value"][1] == "1", expr
    rules = httpx.get(f"{base}/api/v1/rules").json()["data"]["groups"]
    loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert "LatencyP95OutsideGate" in loaded and set(loaded.values()) == {"ok"}
    # the health alerts: quiet while the server serves its model; TargetDown's once it is gone
    exprs = {r["name"]: r["query"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
    for name in ("TargetDown", "TargetMissing", "ModelNotLoaded", "DriftBaselineMissing"):
        assert query_until(base, exprs[name], lambda r: True) == [], name
    server.stop()
    down = query_until(base, exprs["TargetDown"], lambda r: len(r) == 1)
    assert down[0]["metric"]["instance"] == f"127.0.0.1:{server.metrics_port}"
    assert query_until(base, exprs["ModelNotLoaded"], lambda r: True) == []  # no page twice
