"""The alerts a spec gets (its own and those its gates imply), in PromQL; pure, no I/O."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from cvspec.errors import CvspecError
from cvspec.serve import metric_names as m

DEFAULT_ERROR_RATE = 0.05  # share of /predict answers that are 5xx
DEFAULT_DRIFT = 0.5  # shift of a live mean, in training standard deviations ("medium" effect)
DEFAULT_CONFIDENCE = 0.5  # mean top-1 confidence floor when no accuracy gate says more
DEFAULT_ORIGIN = "cvspec default"  # the origin of an alert no spec key asked for
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class AlertRule(NamedTuple):
    """One alert: what it watches, its bounds, and where in the spec it came from."""

    name: str
    metric: str  # a key of metric_names.ALERT_METRICS
    min: float | None
    max: float | None
    for_: str
    severity: str
    summary: str
    origin: str  # the spec key it came from, e.g. evaluate.gates.latency_p95_ms


def seconds(duration: str) -> float:
    """A Prometheus duration ('1h30m', '500ms') in seconds."""
    return sum(
        int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", duration)
    )


def number(value: float) -> str:
    """A float as PromQL reads it back exactly ('20.0', '0.2', '1e-05')."""
    return repr(float(value))


def metric_expr(metric: str, job: str) -> str:
    """The PromQL that gives one value of an alert metric per job (or per series)."""
    sel = f'job="{job}"'
    if metric.startswith("latency_p"):
        quantile = metric.removeprefix("latency_").removesuffix("_ms")
        return f"{m.RECORDED_LATENCY.format(q=quantile)}{{{sel}}} * 1000"
    if metric.endswith("_drift") and metric != "input_drift":
        return f'{m.DRIFT}{{{sel},stat="{metric.removesuffix("_drift")}"}}'
    simple = {
        "error_rate": m.RECORDED_ERROR_RATIO,
        "request_rate": m.RECORDED_REQUEST_RATE,
        "mean_confidence": m.RECORDED_MEAN_CONFIDENCE,
        "queue_depth": m.QUEUE_DEPTH,
        "input_drift": m.DRIFT,
    }
    return f"{simple[metric]}{{{sel}}}"


def alert_expr(rule: AlertRule, job: str) -> str:
    """The alert condition: the metric outside [min, max]."""
    expr = metric_expr(rule.metric, job)
    low = f"{expr} < {number(rule.min)}" if rule.min is not None else None
    high = f"{expr} > {number(rule.max)}" if rule.max is not None else None
    if low and high:
        return f"({low}) or ({high})"
    return low or high or ""


def recording_rules(job: str) -> list[dict[str, str]]:
    """The series alerts read: latency quantiles, error ratio, request rate, mean confidence."""
    predict = f'job="{job}",route="{m.PREDICT_ROUTE}"'
    buckets = f"sum by (job, le) (rate({m.REQUEST_SECONDS}_bucket{{{predict}}}[5m]))"
    rules = [
        {"record": m.RECORDED_LATENCY.format(q=name), "expr": f"histogram_quantile({q}, {buckets})"}
        for name, q in m.LATENCY_QUANTILES.items()
    ]
    requests = f"sum by (job) (rate({m.REQUESTS}{{{predict}}}[5m]))"
    errors = f'sum by (job) (rate({m.REQUESTS}{{{predict},status=~"5.."}}[5m]))'
    conf = f'job="{job}"'
    rules += [
        {"record": m.RECORDED_ERROR_RATIO, "expr": f"{errors} / {requests}"},
        {"record": m.RECORDED_REQUEST_RATE, "expr": requests},
        {
            "record": m.RECORDED_MEAN_CONFIDENCE,
            "expr": f"sum by (job) (rate({m.CONFIDENCE}_sum{{{conf}}}[15m])) / "
            f"sum by (job) (rate({m.CONFIDENCE}_count{{{conf}}}[15m]))",
        },
    ]
    return rules


def alert_rules(spec: Any) -> list[AlertRule]:
    """The spec's monitor.alerts, then the alerts its gates imply unless one already covers it."""
    own = [_own(i, a) for i, a in enumerate(spec.monitor.alerts)]
    names, metrics = {a.name for a in own}, {a.metric for a in own}
    derived = [a for a in _derived(spec) if a.name not in names and a.metric not in metrics]
    return own + derived


def _own(index: int, alert: Any) -> AlertRule:
    where = f"monitor.alerts[{index}]"
    if alert.metric not in m.ALERT_METRICS:
        known = ", ".join(sorted(m.ALERT_METRICS))
        raise CvspecError(
            f"{where} ({alert.name}): unknown metric '{alert.metric}'; use one of {known}"
        )
    summary = alert.description or f"{alert.metric} is {_bounds_text(alert.min, alert.max)}"
    return AlertRule(
        alert.name, alert.metric, alert.min, alert.max, alert.for_, alert.severity, summary, where
    )


def _derived(spec: Any) -> list[AlertRule]:
    """The alerts the gates imply, then the defaults every server gets (errors, drift)."""
    gates, rows, default = spec.evaluate.gates, [], DEFAULT_ORIGIN
    for q, severity in (("p50", "ticket"), ("p95", "page")):
        metric, name = f"latency_{q}_ms", f"Latency{q.upper()}OutsideGate"
        if (gate := getattr(gates, metric, None)) is not None:
            text = f"{q} latency of {m.PREDICT_ROUTE} is {_bounds_text(gate.min, gate.max)} ms"
            origin = f"evaluate.gates.{metric}"
            rows.append((name, metric, gate.min, gate.max, "10m", severity, text, origin))
    errors, drift = DEFAULT_ERROR_RATE, DEFAULT_DRIFT
    text = f"more than {errors:.0%} of {m.PREDICT_ROUTE} answers are errors (5xx)"
    rows.append(("HighErrorRate", "error_rate", None, errors, "5m", "page", text, default))
    if spec.task == "classification":
        floor, origin = _confidence_floor(gates)
        text = f"mean top-1 confidence fell below {floor:g}"
        rows.append(
            ("ConfidenceCollapse", "mean_confidence", floor, None, "15m", "ticket", text, origin)
        )
    text = (
        f"an input statistic moved more than {drift:g} training standard deviations from training"
    )
    rows.append(
        ("InputDistributionDrift", "input_drift", None, drift, "30m", "ticket", text, default)
    )
    return [AlertRule(*row) for row in rows]


def _confidence_floor(gates: Any) -> tuple[float, str]:
    """A calibrated model's mean confidence tracks its accuracy to within its ECE."""
    accuracy, ece = getattr(gates, "accuracy", None), getattr(gates, "ece", None)
    if accuracy is None or accuracy.min is None:
        return DEFAULT_CONFIDENCE, DEFAULT_ORIGIN
    slack = ece.max if ece is not None and ece.max is not None else 0.1
    origin = "evaluate.gates.accuracy" + (" - evaluate.gates.ece" if ece is not None else " - 0.1")
    return round(max(0.05, accuracy.min - slack), 6), origin


def _bounds_text(low: float | None, high: float | None) -> str:
    parts = [
        f"below {low:g}" if low is not None else "",
        f"above {high:g}" if high is not None else "",
    ]
    return " or ".join(p for p in parts if p)
