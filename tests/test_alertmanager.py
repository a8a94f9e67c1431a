"""Alertmanager output: routes by severity to Slack and Jira, secrets only by file reference."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, tool

# Alertmanager's JiraConfig fields (config/notifiers.go, v0.28+): what a jira_configs entry may set.
JIRA_FIELDS = {
    "send_resolved",
    "http_config",
    "api_url",
    "project",
    "summary",
    "description",
    "labels",
    "priority",
    "issue_type",
    "reopen_transition",
    "resolve_transition",
    "wont_fix_resolution",
    "reopen_duration",
    "fields",
}
JIRA_URL = "https://acme.atlassian.net/rest/api/2/"
BOTH = (
    MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv', jira: CV}}")
    + f"monitor: {{notify: {{jira_url: '{JIRA_URL}'}}}}\n"
)


def load(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def dump(data: Any, path: Path) -> Path:
    from cvspec.generate.render import dump_yaml

    path.write_text(dump_yaml(data))
    return path


def build(tmp_path: Path, spec: str) -> Path:
    root = project(tmp_path, spec)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root / "generated/demo/monitoring/alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("amtool", "apt-get install -y prometheus prometheus-alertmanager"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def knows_jira() -> bool:
    """Alertmanager's own Jira receiver arrived in 0.28."""
    found = re.search(
        r"version (\d+)\.(\d+)", amtool("--version").stdout + amtool("--version").stderr
    )
    return found is not None and (int(found[1]), int(found[2])) >= (0, 28)


def checkable(config: dict[str, Any]) -> dict[str, Any]:
    """The config an older amtool can check: the Jira parts set aside (they are checked apart)."""
    if knows_jira():
        return config
    config = {**config, "global": {}}
    config["receivers"] = [
        {k: v for k, v in r.items() if k != "jira_configs"} for r in config["receivers"]
    ]
    return config


def test_amtool_accepts_the_config_and_routes_by_severity(tmp_path: Path) -> None:
    path = build(tmp_path, BOTH)
    config = load(path)
    checked = dump(checkable(config), tmp_path / "checked.yml")
    done = amtool("check-config", str(checked))
    assert done.returncode == 0, done.stdout + done.stderr
    routes = {
        s: amtool("config", "routes", "test", f"--config.file={checked}", f"severity={s}")
        for s in ("page", "ticket", "info")
    }
    assert {s: r.stdout.strip() for s, r in routes.items()} == {
        "page": "slack",
        "ticket": "jira",
        "info": "null",
    }
    jira = next(r for r in config["receivers"] if r["name"] == "jira")["jira_configs"]
    assert len(jira) == 1 and set(jira[0]) <= JIRA_FIELDS
    assert jira[0]["project"] == "CV" and config["global"] == {"jira_api_url": JIRA_URL}


def test_slack_shows_summary_description_and_dashboard(tmp_path: Path) -> None:
    slack = next(r for r in load(build(tmp_path, BOTH))["receivers"] if r["name"] == "slack")
    text = slack["slack_configs"][0]["text"]
    for annotation in ("summary", "description", "dashboard", "source"):
        assert f"{{{{ .Annotations.{annotation} }}}}" in text
    (tmp_path / "none.tmpl").write_text("")
    glob = f"--template.glob={tmp_path / 'none.tmpl'}"
    done = amtool("template", "render", glob, f"--template.text={text}")
    assert done.returncode == 0, done.stdout + done.stderr  # a template Alertmanager parses


def test_without_a_jira_url_tickets_go_where_pages_go(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv', jira: CV}}")
    config = load(build(tmp_path, spec))
    assert [r["name"] for r in config["receivers"]] == ["null", "slack"]
    assert "global" not in config


def test_notify_jira_without_url_is_a_spec_error(tmp_path: Path) -> None:
    root = project(tmp_path, MINIMAL_SPEC + "monitor: {notify: {jira: CV}}\n")
    result = cvspec("validate", cwd=root)
    assert result.code == 2
    assert "error[jira-url]: monitor.notify.jira routes tickets to Jira" in result.err


def test_credentials_are_files_never_values(tmp_path: Path) -> None:
    spec = BOTH.replace(
        "monitor: {notify: {",
        "monitor: {notify: {slack: '#cv-alerts', slack_webhook_secret: CV_HOOK, ",
    )
    path = build(tmp_path, spec)
    config = load(path)
    slack = next(r for r in config["receivers"] if r["name"] == "slack")["slack_configs"][0]
    assert (slack["channel"], slack["api_url_file"]) == ("#cv-alerts", "/run/secrets/cv_hook")
    assert "api_url" not in slack
    auth = next(r for r in config["receivers"] if r["name"] == "jira")["jira_configs"][0]
    assert auth["http_config"] == {
        "basic_auth": {
            "username_file": "/run/secrets/jira_username",
            "password_file": "/run/secrets/jira_api_token",
        }
    }
    compose = load(path.parent / "docker-compose.monitoring.yml")
    assert compose["secrets"] == {
        "cv_hook": {"environment": "CV_HOOK"},
        "jira_username": {"environment": "JIRA_USERNAME"},
        "jira_api_token": {"environment": "JIRA_API_TOKEN"},
        "grafana_admin_password": {"environment": "GRAFANA_ADMIN_PASSWORD"},
    }
    assert compose["services"]["alertmanager"]["secrets"] == list(compose["secrets"])[:3]
    grafana = compose["services"]["grafana"]
    assert grafana["secrets"] == ["grafana_admin_password"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == (
        "/run/secrets/grafana_admin_password"
    )


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        ("{slack: '#cv'}", {"page": "slack", "ticket": "slack", "info": "null"}),
        ("{jira: CV}", {"page": "jira", "ticket": "jira", "info": "null"}),
        ("{}", {"page": "null", "ticket": "null", "info": "null"}),
    ],
)
def test_one_channel_takes_every_severity(
    tmp_path: Path, contacts: str, expected: dict[str, str]
) -> None:
    spec = MINIMAL_SPEC.replace("{name: demo}", f"{{name: demo, contacts: {contacts}}}")
    spec += f"monitor: {{notify: {{jira_url: '{JIRA_URL}'}}}}\n"
    config = checkable(load(build(tmp_path, spec)))
    checked = dump(config, tmp_path / "checked.yml")
    assert amtool("check-config", str(checked)).returncode == 0
    got = {
        s: amtool(
            "config", "routes", "test", f"--config.file={checked}", f"severity={s}"
        ).stdout.strip()
        for s in expected
    }
    assert got == expected


def test_a_dead_or_modelless_server_inhibits_the_error_and_latency_alerts_of_its_job(
    tmp_path: Path,
) -> None:
    spec = BOTH + "evaluate: {gates: {latency_p50_ms: {max: 8}, latency_p95_ms: {max: 20}}}\n"
    config = load(build(tmp_path, spec))
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['alertname=~"TargetDown|ModelNotLoaded"'],
            "target_matchers": [
                'alertname=~"LatencyP50OutsideGate|LatencyP95OutsideGate|HighErrorRate"'
            ],
            "equal": ["job"],
        }
    ]
    checked = dump(checkable(config), tmp_path / "checked.yml")
    done = amtool("check-config", str(checked))
    assert done.returncode == 0 and " - 1 inhibit rules" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_alertmanager_holds_back_the_symptoms_of_a_modelless_server(tmp_path: Path) -> None:
    """A real Alertmanager with the generated config: ModelNotLoaded pages, the HighErrorRate
    and latency alerts of its job are inhibited; another job's HighErrorRate is not."""
    import shutil
    import time

    import httpx

    from cvspec.serve.launch import free_port

    binary = shutil.which("alertmanager") or tool(
        "prometheus-alertmanager", "apt-get install -y prometheus-alertmanager"
    )
    spec = BOTH + "evaluate: {gates: {latency_p95_ms: {max: 20}}}\n"
    checked = dump(checkable(load(build(tmp_path, spec))), tmp_path / "checked.yml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={checked}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            alerts = [
                {"alertname": "ModelNotLoaded", "job": "demo", "instance": "server:9090"},
                {"alertname": "HighErrorRate", "job": "demo"},
                {"alertname": "LatencyP95OutsideGate", "job": "demo"},
                {"alertname": "HighErrorRate", "job": "other"},
            ]
            posted = httpx.post(
                f"{base}/api/v2/alerts",
                json=[{"labels": {**a, "severity": "page"}} for a in alerts],
                timeout=10,
            )
            assert posted.status_code == 200, posted.text
            expected = {
                ("ModelNotLoaded", "demo"): False,
                ("HighErrorRate", "demo"): True,
                ("LatencyP95OutsideGate", "demo"): True,
                ("HighErrorRate", "other"): False,
            }
            deadline, got = time.monotonic() + 30, {}
            while time.monotonic() < deadline:  # the inhibitor sees new alerts a moment later
                got = {
                    (a["labels"]["alertname"], a["labels"]["job"]): bool(a["status"]["inhibitedBy"])
                    for a in httpx.get(f"{base}/api/v2/alerts", timeout=10).json()
                }
                if got == expected:
                    break
                time.sleep(0.2)
            assert got == expected, (tmp_path / "alertmanager.log").read_text()
        finally:
            proc.terminate()
            proc.wait(15)


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ("", {"send_resolved": False}),
        (
            "jira_resolve_transition: Close Issue, ",
            {"send_resolved": True, "resolve_transition": "Close Issue"},
        ),
    ],
)
def test_resolved_alerts_reach_jira_only_with_a_transition_to_close_the_ticket(
    tmp_path: Path, notify: str, expected: dict[str, Any]
) -> None:
    """Alertmanager 0.28 takes resolve_transition on every resolved notification to Jira and
    fails it ("can't find transition") when none is set: without one, send none."""
    spec = BOTH.replace("jira_url:", f"{notify}jira_url:")
    jira = next(r for r in load(build(tmp_path, spec))["receivers"] if r["name"] == "jira")
    got = {k: v for k, v in jira["jira_configs"][0].items() if k in expected or "transition" in k}
    assert got == expected


def test_a_jira_transition_is_one_line_of_a_name(tmp_path: Path) -> None:
    spec = BOTH.replace("jira_url:", "jira_resolve_transition: '{{ x }}', jira_url:")
    result = cvspec("validate", cwd=project(tmp_path, spec))
    assert result.code == 2, result.out
    assert "monitor.notify.jira_resolve_transition: must be a Jira workflow transition" in (
        result.err
    )


def render(tmp_path: Path, text: str, data: dict[str, Any]) -> str:
    """`text` as Alertmanager renders it for the notification `data` (template.Data)."""
    import json

    (tmp_path / "none.tmpl").write_text("")
    (tmp_path / "data.json").write_text(json.dumps(data))
    done = amtool(
        "template",
        "render",
        f"--template.glob={tmp_path / 'none.tmpl'}",
        f"--template.data={tmp_path / 'data.json'}",
        f"--template.text={text}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_slack_and_jira_show_what_fires_since_when_and_link_the_dashboard(tmp_path: Path) -> None:
    """Slack's title links the dashboard (not Alertmanager's own unreachable URL); Jira's ticket
    is titled by the alert's summary, with no [FIRING:n] that changes under it, and describes
    each alert as Slack does; a resolved alert among firing ones says so."""
    board = "https://grafana.acme.com/d/cvspec-demo"
    spec = BOTH.replace("jira_url:", "jira_resolve_transition: Done, jira_url:").replace(
        "monitor: {", "monitor: {grafana_url: 'https://grafana.acme.com', "
    )
    config = load(build(tmp_path, spec))
    slack = next(r for r in config["receivers"] if r["name"] == "slack")["slack_configs"][0]
    jira = next(r for r in config["receivers"] if r["name"] == "jira")["jira_configs"][0]
    notes = {"summary": "drift is above 0.2", "dashboard": board, "source": "spec: here"}
    alert = {"labels": {"alertname": "InputDrift", "job": "demo"}, "annotations": notes}
    data = {
        "status": "firing",
        "alerts": [
            {**alert, "status": "firing", "startsAt": "2025-01-02T03:04:00Z"},
            {**alert, "status": "resolved", "startsAt": "2025-01-02T01:00:00Z"},
        ],
        "groupLabels": {"alertname": "InputDrift", "job": "demo"},
        "commonLabels": {"alertname": "InputDrift", "job": "demo"},
        "commonAnnotations": notes,
        "externalURL": "http://4f1c2a:9093",
    }
    assert render(tmp_path, slack["title_link"], data) == board
    assert render(tmp_path, jira["summary"], data) == "InputDrift (demo): drift is above 0.2"
    text = render(tmp_path, jira["description"], data)
    assert text == render(tmp_path, slack["text"], data)
    assert text.startswith("*drift is above 0.2* (since 2025-01-02 03:04 UTC)\n")
    assert "*drift is above 0.2* (resolved)\n" in text and f"Dashboard {board}, " in text
    # without the spec's Grafana there is no address to link: no link rather than a dead one
    bare = load(build(tmp_path / "bare", BOTH))["receivers"]
    assert next(r for r in bare if r["name"] == "slack")["slack_configs"][0]["title_link"] == ""
