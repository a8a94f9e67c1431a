"""What the dashboard shows, as data: panels, their PromQL and the spec's threshold lines."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from cvspec.serve import metric_names as m
from cvspec.serve.alerts import alert_rules

SEL = 'job="$job",instance=~"$instance"'
UID_MAX = 40  # Grafana's limit on a dashboard uid
PREDICT = f'{SEL},route="{m.PREDICT_ROUTE}"'
RATE = "$__rate_interval"


class Threshold(NamedTuple):
    """A line drawn on a panel: where, in which colour, and why."""

    value: float
    color: str
    origin: str


class PanelSpec(NamedTuple):
    """One panel: kind (timeseries, stat, gauge, bargauge), unit, queries (expr, legend)."""

    title: str
    kind: str
    unit: str
    targets: tuple[tuple[str, str], ...]
    description: str = ""
    thresholds: tuple[Threshold, ...] = ()
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    instant: bool = False  # one value over the dashboard's range instead of a time series
    show: str = "auto"  # a stat panel's text: auto (Grafana's: the value), name (the legend)


def dashboard_uid(project: str) -> str:
    """The dashboard's uid: `cvspec-<project>` when it fits Grafana's 40 characters.

    A longer one is cut and ends in a hash of the whole name, so two long names that share
    their first 24 characters still get two dashboards.
    """
    uid = f"cvspec-{project}"
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - len(digest) - 1]}-{digest}"


def _quantile(q: float, metric: str, sel: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{sel}}}[{RATE}])))"


def _mean(metric: str, sel: str) -> str:
    return f"sum(rate({metric}_sum{{{sel}}}[{RATE}])) / sum(rate({metric}_count{{{sel}}}[{RATE}]))"


def panels(spec: Any) -> list[PanelSpec]:
    """Every panel, top to bottom; alert and gate bounds become threshold lines."""
    lines = _lines(spec)
    requests = f"sum(rate({m.REQUESTS}{{{PREDICT}}}[{RATE}]))"
    errors = f'sum(rate({m.REQUESTS}{{{PREDICT},status=~"5.."}}[{RATE}]))'
    server_time = tuple(
        (_quantile(q, m.SERVER_SECONDS, SEL), name) for name, q in m.LATENCY_QUANTILES.items()
    )
    latency = tuple(
        (_quantile(q, m.REQUEST_SECONDS, PREDICT), name) for name, q in m.LATENCY_QUANTILES.items()
    )
    return [
        PanelSpec(
            "Model",
            "stat",
            "none",
            (
                (
                    f"max by (name, version, task) ({m.MODEL_INFO}{{{SEL}}})",
                    "{{name}} {{version}} ({{task}})",
                ),
            ),
            "Model name and version (sha256 of the ONNX file) each instance serves.",
            width=8,
            height=4,
            instant=True,
            show="name",  # the value is always 1: the legend is what to read
        ),
        PanelSpec(
            "Queue depth",
            "timeseries",
            "none",
            ((f"sum by (instance) ({m.QUEUE_DEPTH}{{{SEL}}})", "{{instance}}"),),
            "Images waiting for a batch; lines: the queue-depth alerts.",
            lines["queue_depth"],
            width=8,
            height=4,
            min=0,
        ),
        PanelSpec(
            "Baseline images",
            "stat",
            "none",
            ((f"max({m.BASELINE_IMAGES}{{{SEL}}})", "images"),),
            "Images in the training baseline the drift gauges compare with (0: none).",
            width=8,
            height=4,
            instant=True,
        ),
        PanelSpec(
            "Request rate",
            "timeseries",
            "reqps",
            (
                (
                    f"sum by (route, status) (rate({m.REQUESTS}{{{SEL}}}[{RATE}]))",
                    "{{route}} {{status}}",
                ),
                (requests, f"{m.PREDICT_ROUTE} (all)"),
            ),
            f"Requests per second by route and status, and of all {m.PREDICT_ROUTE} answers; "
            "lines: the request-rate alerts.",
            lines["request_rate"],
            min=0,
        ),
        PanelSpec(
            "Error rate",
            "timeseries",
            "percentunit",
            ((f"{errors} / {requests}", "5xx"),),
            "Share of /predict answers that are server errors.",
            lines["error_rate"],
            min=0,
        ),
        PanelSpec(
            f"Server time of {m.PREDICT_ROUTE}",
            "timeseries",
            "s",
            server_time,
            "p50, p95, p99 of the server's own time per request, from its body fully received "
            "to its answer (decode, queue, batching, model): what the latency alerts watch; "
            "lines: the spec's latency gates and alerts.",
            lines["latency"],
            min=0,
        ),
        PanelSpec(
            f"Request latency of {m.PREDICT_ROUTE}",
            "timeseries",
            "s",
            latency,
            "p50, p95, p99 of whole requests as the server sees them, the clients' uploads "
            "included: above the server time, the difference is time spent receiving bodies "
            "(slow or distant clients), not serving.",
            min=0,
        ),
        PanelSpec(
            "Batch size",
            "timeseries",
            "none",
            ((_mean(m.BATCH_SIZE, SEL), "mean"),),
            "Mean images per model call (dynamic batching); line: serve.max_batch, the most a "
            "batch holds. (A quantile of the size histogram would interpolate inside its "
            "buckets: batches of 1 would read 0.95.)",
            (Threshold(spec.serve.max_batch, "blue", "serve.max_batch"),),
            min=0,
        ),
        PanelSpec(
            "Inference time per batch",
            "timeseries",
            "s",
            (
                (_quantile(0.5, m.INFERENCE_SECONDS, SEL), "p50"),
                (_quantile(0.95, m.INFERENCE_SECONDS, SEL), "p95"),
            ),
            "Time of one model call.",
            min=0,
        ),
        PanelSpec(
            "Class distribution",
            "bargauge",
            "none",
            ((f"sum by (class) (increase({m.PREDICTIONS}{{{SEL}}}[$__range]))", "{{class}}"),),
            "Predictions per class over the dashboard's time range.",
            instant=True,
        ),
        PanelSpec(
            "Mean confidence",
            "timeseries",
            "percentunit",
            ((_mean(m.CONFIDENCE, SEL), "mean top-1"),),
            "Mean top-1 confidence; line: the confidence-collapse floor.",
            lines["mean_confidence"],
            min=0,
            max=1,
        ),
        PanelSpec(
            "Confidence distribution",
            "bargauge",
            "none",
            ((f"sum by (le) (increase({m.CONFIDENCE}_bucket{{{SEL}}}[$__range]))", "{{le}}"),),
            "Predictions per confidence bucket (cumulative, le = at most).",
            instant=True,
        ),
        PanelSpec(
            "Input drift",
            "gauge",
            "none",
            ((f"max by (stat) ({m.DRIFT}{{{SEL}}})", "{{stat}}"),),
            "Shift of each input statistic's live mean from the training mean, in "
            "training standard deviations.",
            lines["drift"],
            instant=True,
            min=0,
            max=2 * max((t.value for t in lines["drift"]), default=0.5),
        ),
        PanelSpec(
            "Input brightness and contrast",
            "timeseries",
            "percentunit",
            (
                (_mean(m.INPUT_BRIGHTNESS, SEL), "brightness"),
                (_mean(m.INPUT_CONTRAST, SEL), "contrast"),
            ),
            "Mean grey level and grey standard deviation of the inputs.",
            min=0,
            max=1,
        ),
        PanelSpec(
            "Input size",
            "timeseries",
            "none",
            ((_mean(m.INPUT_WIDTH, SEL), "width"), (_mean(m.INPUT_HEIGHT, SEL), "height")),
            "Mean width and height of the inputs, in pixels.",
            min=0,
        ),
    ]


# The panel an alert's link opens, by the alert's metric (AlertRule.metric); a dead or missing
# target has none: the whole dashboard.
ALERT_PANELS = {
    "latency": f"Server time of {m.PREDICT_ROUTE}",
    "error_rate": "Error rate",
    "mean_confidence": "Mean confidence",
    "drift": "Input drift",
    "queue_depth": "Queue depth",
    "request_rate": "Request rate",
    "model_not_loaded": "Model",
    "no_drift_baseline": "Baseline images",
}


def panel_id(spec: Any, metric: str) -> int | None:
    """The id of the panel that shows an alert on `metric` (panels are numbered from 1 in
    order, as the dashboard sets them), or None for the whole dashboard."""
    title = ALERT_PANELS.get(line_panel(metric))
    titles = [p.title for p in panels(spec)]
    return titles.index(title) + 1 if title in titles else None


def line_panel(metric: str) -> str:
    """The panel an alert metric's bounds are drawn on (a key of `_lines`' result)."""
    if metric.startswith("latency_p"):
        return "latency"
    return "drift" if metric.endswith("_drift") else metric


def _lines(spec: Any) -> dict[str, tuple[Threshold, ...]]:
    """Threshold lines per panel from the alerts (which carry the gates' values)."""
    out: dict[str, list[Threshold]] = {line_panel(metric): [] for metric in m.ALERT_METRICS}
    colors = {"page": "red", "ticket": "orange", "info": "blue"}
    for rule in alert_rules(spec):
        for bound in (rule.min, rule.max):
            if bound is None:
                continue
            line = Threshold(bound, colors[rule.severity], f"{rule.name} ({rule.origin})")
            if rule.metric.startswith("latency_p"):
                line = line._replace(value=bound / 1000)  # the panel is in seconds
            out[line_panel(rule.metric)].append(line)
    return {k: tuple(sorted(v)) for k, v in out.items()}
