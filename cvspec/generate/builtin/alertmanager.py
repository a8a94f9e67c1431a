"""Alertmanager routes by severity to Slack and Jira; credentials only by file, never inline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext

NAME = "alertmanager"
SECRETS = "/run/secrets"  # where docker compose (and Kubernetes, by convention) mounts secrets
JIRA_USER_SECRET = "JIRA_USERNAME"
JIRA_TOKEN_SECRET = "JIRA_API_TOKEN"
# Per alert: what is wrong (and since when, or that it resolved), then its value, instance and
# what to do; the dashboard, the spec key. Slack's mrkdwn and Jira's wiki markup both read *bold*.
ALERT_TEXT = (
    '{{ range .Alerts }}*{{ .Annotations.summary }}* ({{ if eq .Status "resolved" }}resolved'
    '{{ else }}since {{ .StartsAt.Format "2006-01-02 15:04 MST" }}{{ end }})\n'
    "{{ .Annotations.description }}\n"
    "Dashboard {{ .Annotations.dashboard }}, from {{ .Annotations.source }}\n{{ end }}"
)
# Jira receivers need Alertmanager >= 0.28 (its native jira_configs).
NOTE = (
    "# Slack's webhook URL and Jira's credentials are read from files under /run/secrets\n"
    "# (docker compose or Kubernetes secrets), never written here.\n"
)
INHIBIT_NOTE = (
    "# One incident, one page: while a server is down or has no model, the error-rate and\n"
    "# latency alerts of its job (which it causes) are held back.\n"
)


def secret_file(name: str) -> str:
    """Where a secret named NAME is mounted: /run/secrets/<name lowercased>."""
    return f"{SECRETS}/{name.lower()}"


def channels(spec: Any) -> tuple[str | None, str | None]:
    """The Slack channel and Jira project alerts go to: monitor.notify, else project.contacts.

    Jira needs monitor.notify.jira_url (which Jira); without it tickets go where pages go.
    """
    notify, contacts = spec.monitor.notify, spec.project.contacts
    jira = (notify.jira or contacts.jira) if notify.jira_url else None
    return notify.slack or contacts.slack, jira


class AlertmanagerGenerator:
    """Makes monitoring/alertmanager.yml: page -> Slack, ticket -> Jira, info -> nowhere."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """One alertmanager.yml; a note on top names what the spec cannot say."""
        from cvspec.generate.render import dump_yaml

        data = config(spec, ctx)
        text = NOTE + (INHIBIT_NOTE if "inhibit_rules" in data else "") + dump_yaml(data)
        yield Artifact("monitoring/alertmanager.yml", NAME, "yaml", data=text)


def config(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """The Alertmanager configuration as data."""
    slack, jira = channels(spec)
    receivers: list[dict[str, Any]] = [{"name": "null"}]
    if slack:
        receivers.append({"name": "slack", "slack_configs": [_slack(spec, ctx, slack)]})
    if jira:
        receivers.append({"name": "jira", "jira_configs": [_jira(spec, ctx, jira)]})
    page = "slack" if slack else ("jira" if jira else "null")
    ticket = "jira" if jira else page
    out: dict[str, Any] = {
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"matchers": ['severity="page"'], "receiver": page},
                {"matchers": ['severity="ticket"'], "receiver": ticket, "repeat_interval": "24h"},
            ],
        },
        "receivers": receivers,
    }
    if inhibit := inhibit_rules(spec):
        out["inhibit_rules"] = inhibit
    if jira:
        out = {"global": {"jira_api_url": spec.monitor.notify.jira_url}, **out}
    return out


def inhibit_rules(spec: Any) -> list[dict[str, Any]]:
    """TargetDown and ModelNotLoaded inhibit the error-rate and latency alerts of their job.

    A server without its model answers 503 to every /predict (HighErrorRate), a crashing one
    fails requests and stalls others: the cause pages, its symptoms wait. `equal` is the job
    only: the error and latency alerts are per job (their rules sum over its instances), and
    the generated prometheus.yml scrapes one instance per job.
    """
    import re

    from cvspec.serve.alerts import alert_rules

    rules = alert_rules(spec)
    causes = [r.name for r in rules if r.metric in ("target_down", "model_not_loaded")]
    symptoms = [
        r.name for r in rules if r.metric == "error_rate" or r.metric.startswith("latency_p")
    ]
    if not causes or not symptoms:
        return []

    def names(found: list[str]) -> str:
        return "|".join(re.escape(n) for n in found)

    return [
        {
            "source_matchers": [f'alertname=~"{names(causes)}"'],
            "target_matchers": [f'alertname=~"{names(symptoms)}"'],
            "equal": ["job"],
        }
    ]


def _slack(spec: Any, ctx: BuildContext, channel: str) -> dict[str, Any]:
    return {
        "api_url_file": secret_file(spec.monitor.notify.slack_webhook_secret),
        "channel": channel,
        "send_resolved": True,
        "title": f"[{{{{ .Status | toUpper }}}}] {{{{ .CommonLabels.alertname }}}} ({ctx.project})",
        # the title links the alert's dashboard on the spec's Grafana; Alertmanager's default,
        # its own --web.external-url, is a container's host name no one reaches from Slack
        "title_link": "{{ .CommonAnnotations.dashboard }}" if spec.monitor.grafana_url else "",
        "text": ALERT_TEXT,
    }


def _jira(spec: Any, ctx: BuildContext, project: str) -> dict[str, Any]:
    """One ticket per alert group (Alertmanager finds it again by its group-key label).

    Resolved alerts reach Jira only with a transition to close their ticket: Alertmanager
    0.28 takes one on every resolved notification, and fails it when none is named.
    """
    close = spec.monitor.notify.jira_resolve_transition
    return {
        "project": project,
        "issue_type": "Bug",
        # the same title while the ticket lives (Alertmanager rewrites it on each notification):
        # Alertmanager's default starts with [FIRING:n] and lists every common label
        "summary": f"{{{{ .GroupLabels.alertname }}}} ({ctx.project}): "
        "{{ .CommonAnnotations.summary }}",
        "description": ALERT_TEXT,
        "labels": ["cvspec", ctx.project],
        "send_resolved": close is not None,
        **({"resolve_transition": close} if close else {}),
        "http_config": {
            "basic_auth": {
                "username_file": secret_file(JIRA_USER_SECRET),
                "password_file": secret_file(JIRA_TOKEN_SECRET),
            }
        },
    }
