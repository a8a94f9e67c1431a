"""Warnings about a valid spec: values a person still has to fill in, settings that do nothing."""

from __future__ import annotations

import math
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


def comment_warnings(raw: RawSpec) -> list[Diagnostic]:
    """A `warning[comment-value]` at each key whose value is empty because what follows it is
    a comment, `slack: #cv-alerts`: YAML reads the key as null, which a field may allow."""
    from cvspec.spec.locate import comment_value, dotted

    found = []
    for path in raw.keys:
        comment = comment_value(raw, path)
        if comment is not None:
            found.append(
                Diagnostic(
                    "comment-value",
                    f"the value of {dotted(path)} is a comment ({comment}), so it is empty",
                    raw.keys[path],
                    f"quote it: {path[-1]}: '{comment}'",
                    len(str(path[-1])),
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


def closed_mosaic_warnings(loaded: Any) -> list[Diagnostic]:
    """A `warning[augment-never-runs]` at a detection spec's mosaic (or mixup) when train.epochs
    is at most ultralytics' close_mosaic: it turns both off for a run's last that many epochs,
    so they never run (the spec as resolved: with its profile and --set flags)."""
    from cvspec.generate.builtin.train_config import CLOSE_MOSAIC

    spec = loaded.spec
    if spec.task != "detection" or spec.train.epochs > CLOSE_MOSAIC:
        return []
    raw = loaded.raw
    origin = raw.values.get(("train", "epochs"))
    source = origin.describe() if origin is not None else "default"
    found = []
    for i, step in enumerate(spec.data.augment):
        if step.name in ("mosaic", "mixup") and step.params.p > 0:
            path: KeyPath = ("data", "augment", i, step.name)
            found.append(
                Diagnostic(
                    "augment-never-runs",
                    f"{step.name} never runs: ultralytics turns it off for the last "
                    f"{CLOSE_MOSAIC} epochs (close_mosaic), and train.epochs is "
                    f"{spec.train.epochs}, from {source}",
                    raw.keys.get(path) or raw.values.get(path),
                    f"train for more than {CLOSE_MOSAIC} epochs, or leave {step.name} out of "
                    "data.augment",
                    span=len(step.name),
                    severity="warning",
                )
            )
    return found


def detector_precision_warnings(loaded: Any) -> list[Diagnostic]:
    """A `warning[precision-not-bf16]` at a detection spec's `precision: bf16`: cvspec turns
    any mixed precision into ultralytics' `amp: true`, which trains in fp16 with a gradient
    scaler (a bf16 `amp` needs newer ultralytics releases than the ones cvspec supports)."""
    spec = loaded.spec
    if spec.task != "detection" or spec.train.precision != "bf16":
        return []
    raw = loaded.raw
    path: KeyPath = ("train", "precision")
    return [
        Diagnostic(
            "precision-not-bf16",
            "a detector trains mixed precision in fp16, not bf16: ultralytics' amp uses fp16 "
            "with a gradient scaler",
            raw.values.get(path) or raw.keys.get(path),
            "write precision: fp16 to say what runs, or fp32 to train without mixed precision",
            severity="warning",
        )
    ]


def sweep_shadow_warnings(loaded: Any) -> list[Diagnostic]:
    """A `warning[sweep-shadows]` at a value the spec writes that train.sweep replaces with
    others at every point: no model is trained with it, so changing it (in a pull request, say)
    changes nothing a run reads, though the generated base config shows it."""
    spec, raw = loaded.spec, loaded.raw
    if spec.task != "classification" or not spec.train.sweep:  # detection has no sweep
        return []
    data = spec.model_dump(mode="json", by_alias=True)
    found = []
    for key, values in spec.train.sweep.items():
        path: KeyPath = tuple(key.split("."))
        origin = raw.values.get(path)
        if origin is None or origin.kind == "default":
            continue
        value = _at(data, path)
        if any(_same(value, v) for v in values):  # one point trains it
            continue
        tried = ", ".join(str(v) for v in values)
        found.append(
            Diagnostic(
                "sweep-shadows",
                f"{key} = {value} is never trained: train.sweep tries {tried} instead",
                origin,
                f"change the values in train.sweep, or take {key} out of the sweep",
                severity="warning",
            )
        )
    return found


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


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
