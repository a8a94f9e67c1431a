"""Prometheus scrape config, alert and recording rules, and the promtool test of every alert."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext

NAME = "prometheus"
SERVER = "server"  # the model server's host name in docker-compose.monitoring.yml
ALERTMANAGER = "alertmanager:9093"
SCRAPE_INTERVAL = "15s"


class PrometheusGenerator:
    """Makes monitoring/prometheus.yml, rules.yml and rules.test.yml from serve, gates, alerts."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The scrape config, the rule file, and its promtool unit tests."""
        yield Artifact("monitoring/prometheus.yml", NAME, "yaml", data=scrape_config(spec, ctx))
        yield Artifact("monitoring/rules.yml", NAME, "yaml", data=rule_file(spec, ctx))
        from cvspec.serve.rule_tests import rule_tests

        tests = rule_tests(spec, ctx.project, "rules.yml", ctx.spec_file)
        yield Artifact("monitoring/rules.test.yml", NAME, "yaml", data=tests)


def scrape_config(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """prometheus.yml: scrape the server's metrics port, load the rules, alert Alertmanager."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]},
        "scrape_configs": [
            {
                "job_name": ctx.project,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{SERVER}:{spec.serve.metrics_port}"]}],
            }
        ],
    }


def rule_file(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """rules.yml: one group of recording rules, one of alerts."""
    from cvspec.serve.alerts import alert_expr, alert_rules, recording_rules
    from cvspec.serve.dashboard import panel_id
    from cvspec.serve.rule_tests import alert_annotations

    alerts = [
        {
            "alert": rule.name,
            "expr": alert_expr(rule, ctx.project),
            "for": rule.for_,
            "labels": {"severity": rule.severity},
            "annotations": alert_annotations(
                rule,
                ctx.project,
                ctx.spec_file,
                grafana=spec.monitor.grafana_url,
                panel=panel_id(spec, rule.metric),
            ),
        }
        for rule in alert_rules(spec)
    ]
    return {
        "groups": [
            {"name": f"{ctx.project}-recording", "rules": recording_rules(ctx.project)},
            {"name": f"{ctx.project}-alerts", "rules": alerts},
        ]
    }
