"""Prometheus output: scrape config and rules pass promtool, and every alert's test fires right."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, tool

HEALTH = ["TargetDown", "TargetMissing", "ModelNotLoaded"]  # every server gets them, as pages
MONITORED = (
    MINIMAL_SPEC
    + """\
project: {name: demo, contacts: {slack: "#cv-alerts", jira: CV}}
evaluate:
  gates:
    accuracy: {min: 0.9}
    ece: {max: 0.05}
    latency_p50_ms: {max: 8}
    latency_p95_ms: {max: 20}
monitor:
  alerts:
    - {name: InputDrift, metric: brightness_drift, max: 0.2, for: 15m, severity: ticket}
    - name: QueueBacklog
      metric: queue_depth
      min: 0
      max: 40
      for: 1m
      severity: page
      description: "queue above {{ 40 }} images: add workers"
"""
)


def load(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def build(tmp_path: Path, spec: str) -> Path:
    root = project(tmp_path, spec.replace("project: {name: demo}\n", "", 1))
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root / "generated/demo/monitoring"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool", "apt-get install -y prometheus prometheus-alertmanager"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_config_rules_and_the_rule_tests(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    for args in (
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules.test.yml"),
    ):
        done = promtool(*args, cwd=out)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_alerts_come_from_the_spec_and_its_gates(tmp_path: Path) -> None:
    rules = load(build(tmp_path, MONITORED) / "rules.yml")
    alerts = {r["alert"]: r for r in rules["groups"][1]["rules"]}
    assert {name: (r["expr"], r["for"], r["labels"]["severity"]) for name, r in alerts.items()} == {
        "InputDrift": (
            '(cvspec_input_drift{job="demo",stat="brightness"} > 0.2) '
            'and on (job) job:cvspec_requests:rate_5m{job="demo"} > 0',
            "15m",
            "ticket",
        ),
        "QueueBacklog": (
            '(cvspec_queue_depth{job="demo"} < 0.0) or (cvspec_queue_depth{job="demo"} > 40.0)',
            "1m",
            "page",
        ),
        "LatencyP50OutsideGate": (
            'job:cvspec_server_duration_seconds:p50_5m{job="demo"} * 1000 > 8.0',
            "10m",
            "ticket",
        ),
        "LatencyP95OutsideGate": (
            'job:cvspec_server_duration_seconds:p95_5m{job="demo"} * 1000 > 20.0',
            "10m",
            "page",
        ),
        "HighErrorRate": (
            '(job:cvspec_request_errors:ratio_5m{job="demo"} > 0.05) '
            'and on (job) job:cvspec_requests:rate_5m{job="demo"} >= 0.1',
            "5m",
            "page",
        ),
        "ConfidenceCollapse": (  # accuracy 0.9 - ece 0.05
            'job:cvspec_prediction_confidence:mean_15m{job="demo"} < 0.85',
            "15m",
            "ticket",
        ),
        "InputDistributionDrift": (
            '(cvspec_input_drift{job="demo"} > 0.5) '
            'and on (job) job:cvspec_requests:rate_5m{job="demo"} > 0',
            "30m",
            "ticket",
        ),
        "TargetDown": ('up{job="demo"} == 0', "3m", "page"),
        "TargetMissing": ('absent(up{job="demo"})', "5m", "page"),
        "ModelNotLoaded": (
            'up{job="demo"} == 1 unless on (job, instance) cvspec_model_info{job="demo"}',
            "5m",
            "page",
        ),
    }
    p95 = alerts["LatencyP95OutsideGate"]["annotations"]
    assert list(p95) == ["summary", "description", "dashboard", "source"]
    assert p95["summary"] == "p95 server time of /predict is above 20 ms"
    assert p95["description"].startswith(
        'latency_p95_ms is {{ $value | printf "%.5g" }} ms for job demo (alerting above 20). '
        "The server's own time for a /predict request, from its body fully received to its "
        "answer (decode, queue, batching, model); a client's slow upload does not count"
    )  # then what to do
    assert p95["dashboard"] == "/d/cvspec-demo"  # the Grafana dashboard's uid
    assert p95["source"] == "specs/demo.yaml: evaluate.gates.latency_p95_ms"
    assert alerts["QueueBacklog"]["annotations"]["summary"] == "queue_depth is below 0 or above 40"
    assert alerts["QueueBacklog"]["annotations"]["description"] == (
        'queue_depth is {{ $value | printf "%.5g" }} images on {{ $labels.instance }} '
        "(alerting below 0 or above 40). "
        'queue above {{ "{{" }} 40 }} images: add workers'  # a Go template prints it as written
    )
    assert alerts["HighErrorRate"]["annotations"]["description"].startswith(
        "error_rate is {{ $value | humanizePercentage }} for job demo (alerting above 0.05). "
    )
    assert alerts["TargetDown"]["annotations"]["description"].startswith(
        "Prometheus has failed to scrape {{ $labels.instance }} (job demo) for 3m. "
    )
    recorded = {r["record"]: r["expr"] for r in rules["groups"][0]["rules"]}
    assert recorded["job:cvspec_server_duration_seconds:p95_5m"] == (
        "histogram_quantile(0.95, sum by (job, le) "
        '(rate(cvspec_server_duration_seconds_bucket{job="demo"}[5m])))'
    )  # the server's own part: not the request histogram, which a slow upload stretches
    records = [r["record"] for r in rules["groups"][0]["rules"]]
    assert records == [
        "job:cvspec_server_duration_seconds:p50_5m",
        "job:cvspec_server_duration_seconds:p95_5m",
        "job:cvspec_server_duration_seconds:p99_5m",
        "job:cvspec_request_errors:ratio_5m",
        "job:cvspec_requests:rate_5m",
        "job:cvspec_prediction_confidence:mean_15m",
    ]


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    tests = load(out / "rules.test.yml")["tests"]
    names = [r["alert"] for r in load(out / "rules.yml")["groups"][1]["rules"]]
    guarded = ("InputDrift", "HighErrorRate", "InputDistributionDrift")  # need traffic
    little = ("stays quiet on too little traffic",)
    assert [t["name"] for t in tests] == [
        f"{n} {c}" for n in names for c in ("fires", "stays quiet", *(little * (n in guarded)))
    ]
    for case in tests:
        expected = case["alert_rule_test"][0]["exp_alerts"]
        assert case["input_series"], case["name"]  # quiet cases carry traffic too
        assert bool(expected) == case["name"].endswith("fires")
        if case["name"].endswith("traffic"):  # the values that fire, on a trickle of requests
            requests = [s for s in case["input_series"] if "requests_total" in s["series"]]
            assert all("+0.5x" in s["values"] for s in requests), requests


def test_the_rule_tests_expect_annotations_as_prometheus_renders_them(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    tests = {t["name"]: t for t in load(out / "rules.test.yml")["tests"]}

    def shown(name: str) -> dict[str, str]:
        alerts = tests[f"{name} fires"]["alert_rule_test"][0]["exp_alerts"]
        return dict(alerts[0]["exp_annotations"])

    assert shown("QueueBacklog") == {
        "summary": "queue_depth is below 0 or above 40",
        "description": "queue_depth is 52 images on server:9090 (alerting below 0 or above 40). "
        "queue above {{ 40 }} images: add workers",
        "dashboard": "/d/cvspec-demo",
        "source": "specs/demo.yaml: monitor.alerts[name=QueueBacklog]",
    }
    assert shown("HighErrorRate")["description"].startswith(
        "error_rate is 52.5% for job demo (alerting above 0.05). "
    )
    assert shown("InputDistributionDrift")["description"].startswith(
        "input_drift of brightness is 1 training standard deviations on server:9090 "
    )
    rules = out / "rules.yml"  # promtool compares them with what Prometheus renders
    rules.write_text(rules.read_text().replace("humanizePercentage", "humanize"))
    done = promtool("test", "rules", "rules.test.yml", cwd=out)
    assert done.returncode == 1 and "HighErrorRate fires" in done.stdout + done.stderr


def test_a_wrong_threshold_fails_the_rule_tests(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    rules = out / "rules.yml"
    rules.write_text(rules.read_text().replace("* 1000 > 20.0", "* 1000 > 2000.0"))
    done = promtool("test", "rules", "rules.test.yml", cwd=out)
    assert done.returncode == 1
    assert "LatencyP95OutsideGate fires" in done.stdout + done.stderr


def test_a_dead_missing_or_modelless_server_pages(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    cases = {
        t["name"]: {s["series"]: s["values"].split("+")[0] for s in t["input_series"]}
        for t in load(out / "rules.test.yml")["tests"]
    }
    up = 'up{job="demo",instance="server:9090"}'
    assert cases["TargetDown fires"] == {up: "0"} and cases["TargetDown stays quiet"] == {up: "1"}
    assert cases["TargetMissing fires"] == {'up{job="other",instance="server:9090"}': "1"}
    assert cases["TargetMissing stays quiet"] == {up: "1"}
    assert cases["ModelNotLoaded fires"] == {up: "1"}  # scraped, but no cvspec_model_info
    info = (
        'cvspec_model_info{job="demo",instance="server:9090",name="demo",version="0",'
        'task="classification"}'
    )
    assert cases["ModelNotLoaded stays quiet"] == {up: "1", info: "1"}
    rules = out / "rules.yml"
    text = rules.read_text()
    for right, wrong in (  # the rule tests catch each mistake
        ('up{job="demo"} == 0', 'up{job="demo"} == 1'),
        ('absent(up{job="demo"})', "absent(up)"),
        ('cvspec_model_info{job="demo"}', 'cvspec_model_info{job="other"}'),
    ):
        rules.write_text(text.replace(right, wrong))
        done = promtool("test", "rules", "rules.test.yml", cwd=out)
        assert done.returncode == 1, wrong


def test_a_spec_alert_replaces_the_derived_one_on_its_metric(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + (
        "evaluate: {gates: {latency_p95_ms: {max: 20}}}\n"
        "project: {name: demo, contacts: {slack: '#cv'}}\n"
        "monitor: {alerts: [{name: SlowP95, metric: latency_p95_ms, max: 50, severity: page}]}\n"
    )
    out = build(tmp_path, spec)
    alerts = load(out / "rules.yml")["groups"][1]["rules"]
    assert [a["alert"] for a in alerts] == [
        "SlowP95",
        "HighErrorRate",
        "ConfidenceCollapse",
        "InputDistributionDrift",
        *HEALTH,
    ]
    assert alerts[2]["expr"].endswith("< 0.5")  # no accuracy gate: the default floor
    assert promtool("test", "rules", "rules.test.yml", cwd=out).returncode == 0


def test_an_unknown_alert_metric_is_an_error(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + (
        "project: {name: demo, contacts: {slack: '#cv'}}\n"
        "monitor: {alerts: [{name: Odd, metric: brightnes_drift, max: 1}]}\n"
    )
    root = project(tmp_path, spec.replace("project: {name: demo}\n", "", 1))
    result = cvspec("build", cwd=root)
    assert result.code == 2
    assert result.err.startswith(
        "specs/demo.yaml:6:40: error[alert-metric]: the server exports no metric "
        "'brightnes_drift' to alert on\n"
    )
    assert "help: did you mean 'brightness_drift'?" in result.err


def test_a_detector_gets_no_confidence_collapse_alert(tmp_path: Path) -> None:
    spec = """\
cvspec: 1
project: {name: demo, contacts: {jira: CV}}
task: detection
data: {path: ../data/demo, format: yolo, classes: [a, b]}
model: {arch: ultralytics/yolov8n.yaml, image_size: 64}
evaluate: {gates: {map50: {min: 0.5}, latency_p95_ms: {max: 50}}}
"""
    out = build(tmp_path, spec)
    alerts = [a["alert"] for a in load(out / "rules.yml")["groups"][1]["rules"]]
    assert alerts == ["LatencyP95OutsideGate", "HighErrorRate", "InputDistributionDrift", *HEALTH]
    assert promtool("test", "rules", "rules.test.yml", cwd=out).returncode == 0


def test_bounds_near_the_edge_of_reach_still_get_a_firing_case(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + (
        "project: {name: demo, contacts: {slack: '#cv'}}\n"
        "evaluate: {gates: {latency_p95_ms: {max: 9999}}}\n"  # only +Inf reads above 9750 ms
        "serve: {max_batch: 16, workers: 2}\n"
        "monitor:\n"
        "  alerts:\n"
        "    - {name: AlmostAllErrors, metric: error_rate, max: 0.999}\n"
        "    - {name: FullQueues, metric: queue_depth, max: 255}\n"  # 2 workers x 128 images
        "    - {name: FastP50, metric: latency_p50_ms, min: 0.6}\n"  # the first bucket: 0.5 ms
        "    - {name: Trickle, metric: request_rate, min: 0.001}\n"
    )
    out = build(tmp_path, spec)
    done = promtool("test", "rules", "rules.test.yml", cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_tests_refuse_an_alert_that_cannot_fire(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation rejects such bounds (alert-range); reaching here is a bug, not a test."""
    from cvspec.serve import rule_tests
    from cvspec.serve.alerts import AlertRule

    never = AlertRule("Errors", "error_rate", None, 5.0, "5m", "page", "s", "monitor.alerts[0]")
    monkeypatch.setattr(rule_tests, "alert_rules", lambda spec: [never])
    with pytest.raises(RuntimeError, match="no input series can make Errors fire"):
        rule_tests.rule_tests(None, "demo", "rules.yml", "specs/demo.yaml")


def test_alerts_link_the_dashboard_on_the_specs_grafana(tmp_path: Path) -> None:
    spec = MONITORED.replace("monitor:\n", "monitor:\n  grafana_url: https://grafana.acme.com/\n")
    assert spec != MONITORED
    out = build(tmp_path, spec)
    rules = load(out / "rules.yml")["groups"][1]["rules"]
    assert {r["annotations"]["dashboard"] for r in rules} == {
        "https://grafana.acme.com/d/cvspec-demo"
    }
    assert promtool("test", "rules", "rules.test.yml", cwd=out).returncode == 0
