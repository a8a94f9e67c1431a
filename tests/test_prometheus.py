"""Prometheus output: scrape config and rules pass promtool, and every alert's test fires right."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, tool

HEALTH = ["TargetDown", "TargetMissing", "ModelNotLoaded"]  # every server gets them, as pages
BASELINE = "DriftBaselineMissing"  # a ticket, wherever a drift alert is
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


def only(out: Path, *alerts: str) -> str:
    """A copy of rules.test.yml with the tests of `alerts` alone, for a test of one rule's
    mistake: promtool 2.42 has no --run, and each of the file's 30-odd tests costs it 0.3 s."""
    from cvspec.generate.render import dump_yaml

    data = load(out / "rules.test.yml")
    data["tests"] = [t for t in data["tests"] if t["name"].split(" ")[0] in alerts]
    assert {t["name"].split(" ")[0] for t in data["tests"]} == set(alerts)
    name = f"{'-'.join(alerts)}.test.yml"
    (out / name).write_text(dump_yaml(data))
    return name


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
            'and on (job) max_over_time(job:cvspec_requests:rate_5m{job="demo"}[1h]) > 0',
            "15m",
            "ticket",
        ),
        "QueueBacklog": (
            '(cvspec_queue_depth{job="demo"} < 0.0) or (cvspec_queue_depth{job="demo"} > 40.0)',
            "1m",
            "page",
        ),
        "LatencyP50OutsideGate": (
            'last_over_time(job:cvspec_server_duration_seconds:p50_5m{job="demo"}[1h]) * 1000 '
            "> 8.0",
            "10m",
            "ticket",
        ),
        "LatencyP95OutsideGate": (
            'last_over_time(job:cvspec_server_duration_seconds:p95_5m{job="demo"}[1h]) * 1000 '
            "> 20.0",
            "10m",
            "page",
        ),
        "HighErrorRate": (
            'last_over_time(job:cvspec_request_errors:ratio_5m{job="demo"}[1h]) > 0.05',
            "5m",
            "page",
        ),
        "ConfidenceCollapse": (  # accuracy 0.9 - ece 0.05
            'last_over_time(job:cvspec_prediction_confidence:mean_15m{job="demo"}[1h]) < 0.85',
            "15m",
            "ticket",
        ),
        "InputDistributionDrift": (
            '(cvspec_input_drift{job="demo",stat!="brightness"} > 0.5) '  # InputDrift's
            'and on (job) max_over_time(job:cvspec_requests:rate_5m{job="demo"}[1h]) > 0',
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
        "DriftBaselineMissing": ('cvspec_drift_baseline_images{job="demo"} == 0', "15m", "ticket"),
    }
    assert alerts["DriftBaselineMissing"]["annotations"]["description"] == (
        "{{ $labels.instance }} (job demo) has had no drift baseline for 15m. "
        "InputDrift, InputDistributionDrift cannot fire without it. The server looks for the "
        "data stage's stats.json beside the model (stats.json, ../data/stats.json) or takes "
        "--baseline PATH; the server log says so at start, and the dashboard's Baseline images "
        "reads 0."
    )
    p95 = alerts["LatencyP95OutsideGate"]["annotations"]
    assert list(p95) == ["summary", "description", "dashboard", "source"]
    assert p95["summary"] == "p95 server time of /predict is above 20 ms"
    assert p95["description"].startswith(
        'latency_p95_ms is {{ $value | printf "%.5g" }} ms for job demo (alerting above 20 ms). '
        "The server's own time for a /predict request, from its body fully received to its "
        "answer (decode, queue, batching, model); a client's slow upload does not count"
    )  # then what to do
    assert p95["dashboard"] == "/d/cvspec-demo?viewPanel=6"  # the dashboard (its uid), its panel
    assert p95["source"] == "specs/demo.yaml: evaluate.gates.latency_p95_ms"
    assert alerts["InputDrift"]["annotations"]["description"] == (  # no description: cvspec's
        'brightness_drift is {{ $value | printf "%.5g" }} training standard deviations on '
        "{{ $labels.instance }} (alerting above 0.2 training standard deviations). Live images "
        "no longer look like the training data (camera, lighting, resolution, or a client "
        "sending something else): compare samples with the training set; retrain on new data "
        "if the change is there to stay."
    )
    assert "runbook_url" not in alerts["InputDrift"]["annotations"]  # no page to point at
    summary = alerts["QueueBacklog"]["annotations"]["summary"]
    assert summary == "queue_depth is below 0 or above 40 images"
    assert alerts["QueueBacklog"]["annotations"]["description"] == (
        'queue_depth is {{ $value | printf "%.5g" }} images on {{ $labels.instance }} '
        "(alerting below 0 or above 40 images). "
        'queue above {{ "{{" }} 40 }} images: add workers'  # a Go template prints it as written
    )
    assert alerts["HighErrorRate"]["annotations"]["description"].startswith(
        "error_rate is {{ $value | humanizePercentage }} for job demo (alerting above 5%). "
    )
    assert alerts["TargetDown"]["annotations"]["description"].startswith(
        "Prometheus has failed to scrape {{ $labels.instance }} (job demo) for 3m. "
    )
    recorded = {r["record"]: r["expr"] for r in rules["groups"][0]["rules"]}
    assert recorded["job:cvspec_server_duration_seconds:p95_5m"] == (
        "histogram_quantile(0.95, sum by (job, le) "
        '(rate(cvspec_server_duration_seconds_bucket{job="demo"}[5m]))) >= 0'
    )  # the server's own part, not the request histogram a slow upload stretches; no NaN
    predict = 'job="demo",route="/predict"'
    assert recorded["job:cvspec_request_errors:ratio_5m"] == (
        f'sum by (job) (rate(cvspec_requests_total{{{predict},status=~"5.."}}[5m]) '
        f"or rate(cvspec_requests_total{{{predict}}}[5m]) * 0) "
        f"/ (sum by (job) (rate(cvspec_requests_total{{{predict}}}[5m])) >= 0.1)"
    )  # 0 before any 5xx series exists; no value over a window of under 0.1 requests/s
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
    windows = (*guarded, "LatencyP50OutsideGate", "LatencyP95OutsideGate", "ConfidenceCollapse")
    default = "InputDistributionDrift"  # leaves brightness to InputDrift
    bursty = ("fires on bursty traffic", "stays quiet on bursty traffic")
    assert [t["name"] for t in tests] == [
        f"{n} {c}"
        for n in names
        for c in (
            "fires",
            "stays quiet",
            *(little * (n in guarded)),
            *(bursty * (n in windows)),
            *(("stays quiet on brightness drift, left to the spec's alert",) * (n == default)),
        )
    ]
    for case in tests:
        expected = case["alert_rule_test"][0]["exp_alerts"]
        assert case["input_series"], case["name"]  # quiet cases carry traffic too
        assert bool(expected) == (" fires" in case["name"])
        if "bursty" in case["name"]:  # 3 hours, judged in the longest gap: 9 minutes after one
            assert case["alert_rule_test"][0]["eval_time"] == "179m"
            requests = [s for s in case["input_series"] if "requests_total" in s["series"]]
            for series in requests:
                assert len(series["values"].split()) == 19, series  # 18 bursts and the last
        if case["name"].endswith("too little traffic"):  # the values that fire, on a trickle
            requests = [s for s in case["input_series"] if "requests_total" in s["series"]]
            assert all("+0.5x" in s["values"] for s in requests), requests


def test_the_rule_tests_expect_annotations_as_prometheus_renders_them(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    tests = {t["name"]: t for t in load(out / "rules.test.yml")["tests"]}

    def shown(name: str) -> dict[str, str]:
        alerts = tests[f"{name} fires"]["alert_rule_test"][0]["exp_alerts"]
        return dict(alerts[0]["exp_annotations"])

    assert shown("QueueBacklog") == {
        "summary": "queue_depth is below 0 or above 40 images",
        "description": "queue_depth is 52 images on server:9090 "
        "(alerting below 0 or above 40 images). "
        "queue above {{ 40 }} images: add workers",
        "dashboard": "/d/cvspec-demo?viewPanel=2",
        "source": "specs/demo.yaml: monitor.alerts[name=QueueBacklog]",
    }
    assert shown("HighErrorRate")["description"].startswith(
        "error_rate is 52.5% for job demo (alerting above 5%). "
    )
    assert shown("InputDistributionDrift")["description"].startswith(
        "input_drift of contrast is 1 training standard deviations on server:9090 "
    )
    rules = out / "rules.yml"  # promtool compares them with what Prometheus renders
    rules.write_text(rules.read_text().replace("humanizePercentage", "humanize"))
    done = promtool("test", "rules", only(out, "HighErrorRate"), cwd=out)
    assert done.returncode == 1 and "HighErrorRate fires" in done.stdout + done.stderr


def scenario(out: Path, name: str, series: dict[str, str], at: str, alerts: dict[str, bool]) -> str:
    """Run one promtool test on the generated rules: `series` (name{labels} -> values) and,
    at `at`, which alerts fire (labels checked: severity and job only where they fire)."""
    from cvspec.generate.render import dump_yaml

    tests = [
        {
            "name": name,
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": []} for alert in alerts
            ],
        }
    ]
    path = out / f"{name.replace(' ', '_')}.test.yml"
    path.write_text(dump_yaml({"rule_files": ["rules.yml"], "tests": tests}))
    done = promtool("test", "rules", path.name, cwd=out)
    text = done.stdout + done.stderr
    fired = {a for a in alerts if f"alertname: {a}," in text}  # got alerts where none expected
    assert done.returncode == (1 if fired else 0), text
    assert fired == {a for a, fires in alerts.items() if fires}, text
    return text


def bursts(start: float, jump: float, minutes: int, every: int = 10) -> str:
    """A counter at `start` that rises by `jump` once every `every` minutes (minutes + 1
    one-minute samples)."""
    levels = [start + jump * k for k in range(minutes // every + 1)]
    return " ".join([f"{v:g}x{every - 1}" for v in levels[:-1]] + [f"{levels[-1]:g}"])


def test_bursty_traffic_gets_its_error_and_drift_alerts(tmp_path: Path) -> None:
    """A client bursting every 10 minutes: the gaps between bursts used to drop the traffic
    guard to 0 and the error ratio to NaN, restarting `for`, so a 100% failure never paged."""
    out = build(tmp_path, MONITORED)
    labels = 'job="demo",instance="s:9090",route="/predict"'
    failing = {f'cvspec_requests_total{{{labels},status="500"}}': bursts(100, 100, 180)}
    scenario(out, "all bursts fail", failing, "179m", {"HighErrorRate": True})
    healthy = {
        f'cvspec_requests_total{{{labels},status="200"}}': bursts(100, 99, 180),
        f'cvspec_requests_total{{{labels},status="500"}}': bursts(0, 1, 180),  # 1%
    }
    scenario(out, "healthy bursts", healthy, "179m", {"HighErrorRate": False})
    gauge = 'cvspec_input_drift{{job="demo",instance="s:9090",stat="{}"}}'
    drift = {gauge.format("brightness"): "1x180", gauge.format("width"): "1x180"}
    clean = {gauge.format("brightness"): "0.1x180", gauge.format("width"): "0.1x180"}
    ok = {f'cvspec_requests_total{{{labels},status="200"}}': bursts(100, 100, 180)}
    alerts = {"InputDrift": True, "InputDistributionDrift": True}
    scenario(out, "drifted bursts", {**drift, **ok}, "179m", alerts)
    quiet = dict.fromkeys(alerts, False)
    scenario(out, "clean bursts", {**clean, **ok}, "179m", quiet)
    # traffic stopped over an hour ago: the gauge keeps its last value, nobody is alerted
    stopped = {f'cvspec_requests_total{{{labels},status="200"}}': "0+100x60 6000x120"}
    scenario(out, "drift after traffic stopped", {**drift, **stopped}, "179m", quiet)


def test_the_error_ratio_holds_only_values_with_enough_traffic(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    labels = 'job="demo",instance="s:9090",route="/predict"'
    ok, failed = (f'cvspec_requests_total{{{labels},status="{s}"}}' for s in ("200", "500"))
    # a failing server restarted: the new process has no 5xx series at all, and its 0% is
    # the last value, not the 100% of the process before it
    restarted = {failed: "0+1000x30 stale", ok: "_x31 0+1000x40"}
    scenario(out, "restarted", restarted, "70m", {"HighErrorRate": False})
    # healthy traffic fades to a request every 2 minutes, every other one failing: the
    # trickle's 50% is never recorded (under 0.1 requests/s), the last busy window's 0% holds
    fading = {ok: "0+1000x30 30000+0.25x40", failed: "0x30 0+0.25x40"}  # 0.5 a minute in all
    scenario(out, "fading", fading, "70m", {"HighErrorRate": False})


def test_a_wrong_threshold_fails_the_rule_tests(tmp_path: Path) -> None:
    out = build(tmp_path, MONITORED)
    rules = out / "rules.yml"
    rules.write_text(rules.read_text().replace("* 1000 > 20.0", "* 1000 > 2000.0"))
    done = promtool("test", "rules", only(out, "LatencyP95OutsideGate"), cwd=out)
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
    images = 'cvspec_drift_baseline_images{job="demo",instance="server:9090"}'
    assert cases["DriftBaselineMissing fires"] == {up: "1", images: "0"}
    assert cases["DriftBaselineMissing stays quiet"] == {up: "1", images: "1257"}
    rules = out / "rules.yml"
    text = rules.read_text()
    for alert, right, wrong in (  # the alert's own rule tests catch each mistake
        ("TargetDown", 'up{job="demo"} == 0', 'up{job="demo"} == 1'),
        ("TargetMissing", 'absent(up{job="demo"})', "absent(up)"),
        ("ModelNotLoaded", 'cvspec_model_info{job="demo"}', 'cvspec_model_info{job="other"}'),
        (
            BASELINE,
            'cvspec_drift_baseline_images{job="demo"} == 0',
            'cvspec_drift_baseline_images{job="demo"} > 0',
        ),
    ):
        assert right in text, right
        tests = only(out, alert)
        rules.write_text(text.replace(right, wrong))
        done = promtool("test", "rules", tests, cwd=out)
        assert done.returncode == 1, wrong
        assert f"{alert} " in done.stdout + done.stderr, wrong


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
        BASELINE,
    ]
    assert alerts[2]["expr"].endswith("< 0.5")  # no accuracy gate: the default floor
    description = alerts[0]["annotations"]["description"]  # the spec gave none: cvspec's advice
    assert description.startswith(
        'latency_p95_ms is {{ $value | printf "%.5g" }} ms for job demo (alerting above 50 ms). '
        "The server's own time for a /predict request"
    )
    assert "gate" not in description and "On the dashboard, a long queue" in description
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
    assert alerts == [
        "LatencyP95OutsideGate",
        "HighErrorRate",
        "InputDistributionDrift",
        *HEALTH,
        BASELINE,
    ]
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
    assert {r["annotations"]["dashboard"].partition("?")[0] for r in rules} == {
        "https://grafana.acme.com/d/cvspec-demo"
    }
    # the rule tests expect the links as Prometheus renders them (a spec alert, a derived one
    # and a health page: every alert's link is made alike)
    tests = only(out, "QueueBacklog", "HighErrorRate", "TargetDown")
    assert promtool("test", "rules", tests, cwd=out).returncode == 0


def test_the_default_drift_alert_leaves_the_specs_statistics_to_the_spec(tmp_path: Path) -> None:
    """Dark images drift brightness: InputDrift (the spec's) tickets, not the default too."""
    out = build(tmp_path, MONITORED)
    alerts = {r["alert"]: r for r in load(out / "rules.yml")["groups"][1]["rules"]}
    default = alerts["InputDistributionDrift"]["annotations"]["summary"]
    assert default.startswith("an input statistic other than brightness moved more than 0.5")
    labels = 'job="demo",instance="s:9090"'
    traffic = {f'cvspec_requests_total{{{labels},route="/predict",status="200"}}': "0+1000x60"}
    dark = {f'cvspec_input_drift{{{labels},stat="brightness"}}': "1x60", **traffic}
    scenario(out, "dark", dark, "59m", {"InputDrift": True, "InputDistributionDrift": False})
    small = {f'cvspec_input_drift{{{labels},stat="width"}}': "1x60", **traffic}
    scenario(out, "small", small, "59m", {"InputDrift": False, "InputDistributionDrift": True})
    every = "".join(
        f"    - {{name: {s.title()}Drift, metric: {s}_drift, max: 0.3, severity: ticket}}\n"
        for s in ("brightness", "contrast", "width", "height")
    )
    spec = MONITORED.split("monitor:")[0] + f"monitor:\n  alerts:\n{every}"
    names = [
        r["alert"] for r in load(build(tmp_path / "all", spec) / "rules.yml")["groups"][1]["rules"]
    ]
    assert "InputDistributionDrift" not in names  # every statistic has the spec's own alert


def test_every_alert_metric_has_advice_for_spec_alerts_without_a_description() -> None:
    from cvspec.serve.alerts import ADVICE, advice
    from cvspec.serve.metric_names import ALERT_METRICS

    for metric in ALERT_METRICS:
        assert advice(metric) in ADVICE.values() and advice(metric), metric
