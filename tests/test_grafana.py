"""Grafana output: the dashboard reads only metrics the server exports; provisioning and compose."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import MINIMAL_SPEC, cvspec, fill_drift_window, project

from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

SPEC = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}") + (
    "evaluate: {gates: {accuracy: {min: 0.9}, latency_p50_ms: {max: 8},\n"
    "                   latency_p95_ms: {max: 20}}}\n"
    "monitor: {alerts: [{name: InputDrift, metric: brightness_drift, max: 0.2}]}\n"
)
_NOT_METRICS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, matchers, ranges, functions dropped)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for found in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if not expr[found.end() :].lstrip().startswith("(") and found[0] not in _NOT_METRICS:
            names.add(found[0])
    return names


def load(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("repo"), SPEC)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root / "generated/demo/monitoring"


def test_promql_parser_finds_the_metrics() -> None:
    assert promql_metrics(
        "histogram_quantile(0.95, sum by (le) "
        '(rate(a_bucket{job="$job",x=~"b(c)"}[$__rate_interval])))'
        " / on (job) group_left c:rec:p5 * 1e-05 > bool 2"
    ) == {"a_bucket", "c:rec:p5"}


def test_every_query_names_only_metrics_a_real_server_exports(built: Path, tmp_path: Path) -> None:
    from PIL import Image

    board = json.loads((built / "grafana/dashboards/demo.json").read_text())
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    queries += [
        v["query"].removeprefix("label_values(").rsplit(",", 1)[0]
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    rules = load(built / "rules.yml")["groups"]
    recorded = {r["record"] for r in rules[0]["rules"]}
    rule_exprs = [r["expr"] for group in rules for r in group["rules"]]

    export = write_demo_model(tmp_path / "runs/demo/export", ["red", "green"], image_size=8)
    stats = {
        s: {"mean": 1.0, "std": 1.0, "p5": 0, "p50": 1, "p95": 2, "count": 3}
        for s in ("brightness", "contrast", "width", "height")
    }
    (tmp_path / "runs/demo/data").mkdir()
    (tmp_path / "runs/demo/data/stats.json").write_text(json.dumps(stats))
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, "PNG")
    with ServerProcess(["--model-dir", str(export)]) as server:  # every series exists now
        fill_drift_window(server.url, buf.getvalue())  # the drift gauges: over a full window
        text = httpx.get(server.metrics_url).text
    from prometheus_client.parser import text_string_to_metric_families

    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    used = set().union(*(promql_metrics(q) for q in queries))
    assert used and used <= exported, used - exported
    rule_used = set().union(*(promql_metrics(q) for q in rule_exprs))
    prometheus_own = {"up"}  # Prometheus writes it per target: the rules' target-down alerts
    assert rule_used <= exported | recorded | prometheus_own, rule_used - exported - recorded


def test_dashboard_panels_variables_and_gate_lines(built: Path) -> None:
    board = json.loads((built / "grafana/dashboards/demo.json").read_text())
    assert (board["uid"], board["title"]) == ("cvspec-demo", "demo model server")
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "job", "instance"]
    panels = {p["title"]: p for p in board["panels"]}
    assert list(panels) == [
        "Model",
        "Queue depth",
        "Baseline images",
        "Request rate",
        "Error rate",
        "Server time of /predict",
        "Request latency of /predict",
        "Batch size",
        "Inference time per batch",
        "Class distribution",
        "Mean confidence",
        "Confidence distribution",
        "Input drift",
        "Input brightness and contrast",
        "Input size",
    ]

    def steps(title: str) -> list[tuple[float | None, str]]:
        config = panels[title]["fieldConfig"]["defaults"]
        return [(s["value"], s["color"]) for s in config["thresholds"]["steps"]]

    assert steps("Server time of /predict") == [(None, "green"), (0.008, "orange"), (0.02, "red")]
    server = panels["Server time of /predict"]
    assert server["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}
    assert [t["legendFormat"] for t in server["targets"]] == ["p50", "p95", "p99"]
    assert all("cvspec_server_duration_seconds_bucket" in t["expr"] for t in server["targets"])
    latency = panels["Request latency of /predict"]  # the clients' view, uploads included
    assert all("cvspec_request_duration_seconds_bucket" in t["expr"] for t in latency["targets"])
    assert steps("Request latency of /predict") == [(None, "green")]  # alerts read server time
    assert (server["gridPos"]["y"], server["gridPos"]["w"]) == (
        latency["gridPos"]["y"],
        latency["gridPos"]["w"],
    )  # side by side
    assert steps("Error rate") == [(None, "green"), (0.05, "red")]
    assert steps("Queue depth") == steps("Request rate") == [(None, "green")]  # no such alert
    assert [t["legendFormat"] for t in panels["Request rate"]["targets"]] == [
        "{{route}} {{status}}",
        "/predict (all)",
    ]
    assert steps("Mean confidence") == [(None, "green"), (0.8, "orange")]  # 0.9 - 0.1
    assert steps("Input drift") == [(None, "green"), (0.2, "orange"), (0.5, "orange")]
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    model = panels["Model"]  # its value is always 1: the stat shows the legend instead
    assert model["options"]["textMode"] == "name"
    assert model["options"]["reduceOptions"] == {"calcs": ["lastNotNull"]}
    assert model["targets"][0]["legendFormat"] == "{{name}} {{version}} ({{task}})"
    batch = panels["Batch size"]  # a quantile of the size histogram reads 0.95 for batches of 1
    assert [t["legendFormat"] for t in batch["targets"]] == ["mean"]
    assert "histogram_quantile" not in batch["targets"][0]["expr"]
    assert steps("Batch size") == [(None, "green"), (8, "blue")]  # serve.max_batch
    assert batch["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}


def test_every_alert_metric_draws_its_bounds_on_its_panel(tmp_path: Path) -> None:
    from cvspec.serve.dashboard import panels
    from cvspec.serve.metric_names import ALERT_METRICS
    from cvspec.spec import load_spec

    bounds = {  # metric: (bound, value on the panel, panel)
        "latency_p50_ms": ("max: 150", 0.15, "Server time of /predict"),
        "latency_p95_ms": ("max: 250", 0.25, "Server time of /predict"),
        "latency_p99_ms": ("max: 350", 0.35, "Server time of /predict"),
        "error_rate": ("max: 0.02", 0.02, "Error rate"),
        "request_rate": ("min: 3", 3, "Request rate"),
        "mean_confidence": ("min: 0.4", 0.4, "Mean confidence"),
        "queue_depth": ("max: 48", 48, "Queue depth"),
        "input_drift": ("max: 0.9", 0.9, "Input drift"),
        "brightness_drift": ("max: 0.3", 0.3, "Input drift"),
        "contrast_drift": ("max: 0.4", 0.4, "Input drift"),
        "width_drift": ("max: 0.6", 0.6, "Input drift"),
        "height_drift": ("max: 0.7", 0.7, "Input drift"),
    }
    assert set(bounds) == set(ALERT_METRICS)
    alerts = "".join(
        f"    - {{name: A{i}, metric: {metric}, {bound}, severity: info}}\n"
        for i, (metric, (bound, _, _)) in enumerate(bounds.items())
    )
    root = project(tmp_path, MINIMAL_SPEC + f"monitor:\n  alerts:\n{alerts}")
    shown = {p.title: p.thresholds for p in panels(load_spec(root / "specs/demo.yaml").spec)}
    for i, (metric, (_, value, title)) in enumerate(bounds.items()):
        lines = [t for t in shown[title] if t.origin == f"A{i} (monitor.alerts[name=A{i}])"]
        assert [(t.value, t.color) for t in lines] == [(value, "blue")], metric


def test_each_alert_links_the_panel_that_draws_its_threshold(built: Path) -> None:
    """From Slack or Jira, one click opens the alert's panel (Grafana's viewPanel: its id),
    which draws the alert's threshold; a dead or missing server opens the whole dashboard."""
    board = json.loads((built / "grafana/dashboards/demo.json").read_text())
    by_id = {p["id"]: p for p in board["panels"]}
    assert sorted(by_id) == list(range(1, len(board["panels"]) + 1))
    opened, drawn = {}, {}
    for rule in load(built / "rules.yml")["groups"][1]["rules"]:
        link = rule["annotations"]["dashboard"]
        assert link.startswith(f"/d/{board['uid']}"), link
        found = re.search(r"\?viewPanel=(\d+)$", link)
        panel = by_id[int(found[1])] if found else None
        opened[rule["alert"]] = panel["title"] if panel else None
        bound = re.search(r"[<>] ([0-9.e-]+)$", rule["expr"].split(" and on ")[0].rstrip(")"))
        if panel and bound:
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            scale = 1000 if "* 1000" in rule["expr"] else 1  # latency: ms in the rule, s drawn
            drawn[rule["alert"]] = float(bound[1]) / scale in [s["value"] for s in steps]
    assert opened == {
        "InputDrift": "Input drift",
        "LatencyP50OutsideGate": "Server time of /predict",
        "LatencyP95OutsideGate": "Server time of /predict",
        "HighErrorRate": "Error rate",
        "ConfidenceCollapse": "Mean confidence",
        "InputDistributionDrift": "Input drift",
        "TargetDown": None,
        "TargetMissing": None,
        "ModelNotLoaded": "Model",
        "DriftBaselineMissing": "Baseline images",
    }
    bounded = ("InputDrift", "LatencyP50OutsideGate", "LatencyP95OutsideGate", "HighErrorRate")
    bounded += ("ConfidenceCollapse", "InputDistributionDrift")
    assert drawn == dict.fromkeys(bounded, True)


def test_dashboard_uids_stay_unique_and_within_grafanas_limit(tmp_path: Path) -> None:
    from cvspec.serve.dashboard import UID_MAX, dashboard_uid

    assert dashboard_uid("demo") == "cvspec-demo"  # short names keep the uid they always had
    fits = "a" * (UID_MAX - len("cvspec-"))
    assert dashboard_uid(fits) == f"cvspec-{fits}"
    names = [
        "handwritten-digit-classifier-europe-west",
        "handwritten-digit-classifier-europe-east",
        "a" * 63,
        "a" * 62 + "b",
        fits + "b",
    ]
    uids = [dashboard_uid(n) for n in names]
    assert len(set(uids)) == len(names)
    assert all(len(u) <= UID_MAX and re.fullmatch(r"[a-z0-9_-]+", u) for u in uids)
    assert uids[0].startswith("cvspec-handwritten-digit-cla")
    assert dashboard_uid(names[0]) == uids[0]  # stable from build to build
    for name in names[:2]:  # the build writes that uid
        root = project(tmp_path / name, MINIMAL_SPEC.replace("demo", name, 1), f"{name}.yaml")
        assert cvspec("build", cwd=root).code == 0
        board = root / f"generated/{name}/monitoring/grafana/dashboards/{name}.json"
        assert json.loads(board.read_text())["uid"] == dashboard_uid(name)


def test_provisioning_finds_the_dashboard_in_compose(built: Path) -> None:
    datasources = load(built / "grafana/provisioning/datasources/prometheus.yml")
    assert datasources["datasources"] == [
        {
            "name": "Prometheus",
            "uid": "prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
        }
    ]
    provider = load(built / "grafana/provisioning/dashboards/cvspec.yml")["providers"][0]
    compose = load(built / "docker-compose.monitoring.yml")
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert (built / "grafana/dashboards/demo.json").is_file()
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    prometheus = load(built / "prometheus.yml")
    target = prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0]
    assert target == "server:9090" and "server" in compose["services"]
    assert compose["services"]["server"]["expose"] == ["9090"]


def test_compose_file_matches_the_compose_spec(built: Path) -> None:
    search = f"{os.environ.get('PATH', os.defpath)}:{Path(sys.executable).parent}"
    tool = shutil.which("check-jsonschema", path=search)
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("check-jsonschema is not installed (pip install -e '.[dev]')")
        pytest.skip("check-jsonschema is not installed")
    done = subprocess.run(
        [
            tool,
            "--builtin-schema",
            "vendor.compose-spec",
            str(built / "docker-compose.monitoring.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_the_model_api_is_published_beyond_the_host(built: Path) -> None:
    """Prometheus, Alertmanager (whose API silences alerts and posts to Slack and Jira) and
    Grafana (anonymous viewers) have no login: their ports listen on loopback only."""
    compose = load(built / "docker-compose.monitoring.yml")
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    assert published.pop("server") == ["${CVSPEC_API_PORT:-8080}:8080"]
    assert published == {
        "prometheus": ["127.0.0.1:${CVSPEC_PROMETHEUS_PORT:-9090}:9090"],
        "alertmanager": ["127.0.0.1:${CVSPEC_ALERTMANAGER_PORT:-9093}:9093"],
        "grafana": ["127.0.0.1:${CVSPEC_GRAFANA_PORT:-3000}:3000"],
    }


def test_each_host_port_can_move_for_a_second_stack_on_the_host(built: Path) -> None:
    """Every project's stack publishes the same default host ports; an environment variable
    moves each (compose's `${VAR:-default}`), as the README says, keeping the address."""
    compose = load(built / "docker-compose.monitoring.yml")
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for service in compose["services"].values():
        for entry in service.get("ports", []):
            match = re.fullmatch(r"(127\.0\.0\.1:)?\$\{(CVSPEC_[A-Z]+_PORT):-(\d+)\}:(\d+)", entry)
            assert match, entry
            assert match[3] == match[4]  # by default the host port is the container's
            assert f"`{match[2]}`" in readme


def test_the_composed_server_serves_with_the_spec_settings(built: Path) -> None:
    """The compose server runs the image's spec with every serve setting this build composed."""
    compose = load(built / "docker-compose.monitoring.yml")
    command = compose["services"]["server"]["command"]
    assert command[0] == "specs/demo.yaml"  # the serve image copies specs/ into /app
    dockerfile = (built.parent / "docker/Dockerfile.serve").read_text()
    assert "COPY specs specs" in dockerfile and "WORKDIR /app" in dockerfile
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags["--max-batch"] == "8" and flags["--max-image-bytes"] == "10000000"
    assert flags["--port"] == "8080" and flags["--metrics-port"] == "9090"
    assert flags["--device"] == "cpu" and "deploy" not in compose["services"]["server"]


def test_a_server_on_cuda_gets_a_gpu_in_compose(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC + "deploy: {gpu: true}\nserve: {device: cuda}\n")
    assert cvspec("build", cwd=root).code == 0
    server = load(root / "generated/demo/monitoring/docker-compose.monitoring.yml")["services"][
        "server"
    ]
    flags = dict(zip(server["command"][1::2], server["command"][2::2], strict=True))
    assert flags["--device"] == "cuda"
    assert server["deploy"] == {
        "resources": {
            "reservations": {"devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}
        }
    }


def test_the_composed_server_gets_the_builds_profile(tmp_path: Path) -> None:
    spec = SPEC + "profiles: {prod: {serve: {port: 9000, max_batch: 4}}}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", "--profile", "prod", cwd=root).code == 0
    compose = load(root / "generated/demo/monitoring/docker-compose.monitoring.yml")
    server = compose["services"]["server"]
    flags = dict(zip(server["command"][1::2], server["command"][2::2], strict=True))
    assert server["ports"] == ["${CVSPEC_API_PORT:-9000}:9000"]
    assert flags["--port"] == "9000" and flags["--max-batch"] == "4"
