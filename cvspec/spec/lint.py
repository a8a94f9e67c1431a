"""Warnings about a valid spec: values a person still has to fill in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cvspec.errors import Diagnostic
from cvspec.spec.load import KeyPath, RawSpec

PLACEHOLDER = re.compile(r"\b(TODO|FIXME|TBD)\b")


def warnings(raw: RawSpec) -> list[Diagnostic]:
    """A `warning[placeholder]` at each string value that still says TODO (FIXME, TBD)."""
    found = []
    for path, value in _strings(raw.data, ()):
        if PLACEHOLDER.search(value):
            key = ".".join(str(p) for p in path)
            found.append(
                Diagnostic(
                    "placeholder",
                    f"{key} is still a placeholder: {value!r}",
                    raw.values.get(path),
                    "generated files repeat it (image labels, model card, dashboards): "
                    "write the real value before you ship",
                    severity="warning",
                )
            )
    return found


def receiver_warnings(loaded: Any) -> list[Diagnostic]:
    """A `warning[no-receiver]` when no Slack channel or Jira project is named anywhere: every
    generated alert then goes to Alertmanager's `null` receiver, so nobody hears of it."""
    from cvspec.generate.builtin.alertmanager import channels

    slack, jira = channels(loaded.spec)
    if slack or jira:
        return []
    raw = loaded.raw
    where = raw.keys.get(("monitor",)) or raw.keys.get(("project",))
    return [
        Diagnostic(
            "no-receiver",
            "no alert reaches anyone: neither monitor.notify nor project.contacts names a "
            "Slack channel (or a Jira project with monitor.notify.jira_url)",
            where,
            "set project.contacts.slack (e.g. '#cv-alerts'); until then alerts show in "
            "Prometheus and Grafana only",
            severity="warning",
        )
    ]


def _strings(node: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if path or key != "profiles":  # a profile's values count when it is applied
                yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))
