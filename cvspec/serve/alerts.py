"""The alerts a spec gets (its own and those its gates imply), in PromQL; pure, no I/O."""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from cvspec.errors import CvspecError
from cvspec.serve import metric_names as m

DEFAULT_ERROR_RATE = 0.05  # share of /predict answers that are 5xx
DEFAULT_DRIFT = 0.5  # shift of a live mean, in training standard deviations ("medium" effect)
DEFAULT_CONFIDENCE = 0.5  # mean top-1 confidence floor when no accuracy gate says more
DEFAULT_ORIGIN = "cvspec default"  # the origin of an alert no spec key asked for
# Alerts on the server itself rather than on a value's bounds (their AlertRule.metric).
HEALTH = ("target_down", "target_missing", "model_not_loaded")
NO_BASELINE = "no_drift_baseline"  # the server measures no drift: its drift alerts cannot fire
CONDITIONS = (*HEALTH, NO_BASELINE)  # alerts on a condition, not on a metric's bounds
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


# What an alert on a metric means and what to do, per kind of metric (AlertRule.advice).
_SERVER_TIME = (
    f"The server's own time for a {m.PREDICT_ROUTE} request, from its body fully received to "
    "its answer (decode, queue, batching, model); a client's slow upload does not count (the "
    "dashboard's request latency, beside it, shows the clients' view)."
)
_SLOW = (
    "on the dashboard, a long queue or full batches mean more load than the server takes (add "
    "workers or replicas); a longer inference time per batch points at the host or the model."
)
GATE_LATENCY_ADVICE = f"{_SERVER_TIME} Served slower than the gate the model passed: {_SLOW}"
ADVICE = {
    "latency": f"{_SERVER_TIME} {_SLOW[0].upper()}{_SLOW[1:]}",
    "error_rate": (
        "Request rate shows which status: 500 is the model itself failing (the server log has "
        "the traceback), 503 a full queue (add workers or replicas) or a model not loaded."
    ),
    "mean_confidence": (
        "The model is unsure of what it sees: check Input drift and the class distribution "
        "on the dashboard, and whether Model shows the version you meant to deploy."
    ),
    "drift": (
        "Live images no longer look like the training data (camera, lighting, resolution, "
        "or a client sending something else): compare samples with the training set; "
        "retrain on new data if the change is there to stay."
    ),
    "queue_depth": (
        "Images wait for a batch: a queue that stays long means more load than the server "
        "takes (add workers or replicas) or slower model calls (Inference time per batch on "
        "the dashboard); a full queue answers 503."
    ),
    "request_rate": (
        f"{m.PREDICT_ROUTE} traffic is outside its usual range: check the clients and what "
        "routes their requests to the server (load balancer, DNS); Request rate on the "
        "dashboard shows the status of the answers."
    ),
}


def advice(metric: str) -> str:
    """What an alert on `metric` means and what to do (ADVICE), for alerts with no text."""
    if metric.startswith("latency_p"):
        return ADVICE["latency"]
    return ADVICE["drift"] if metric.endswith("_drift") else ADVICE.get(metric, "")


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
    key: tuple[str | int, ...] = ()  # where its min and max are in the spec; (): a default
    advice: str = ""  # what it means and what to do: the spec's description, or cvspec's
    exclude: tuple[str, ...] = ()  # input_drift: statistics left to the spec's own alerts


class Reach(NamedTuple):
    """The values an alert metric can take, as its alert expression reads them."""

    low: float
    high: float  # math.inf: no ceiling
    text: str  # what the metric is and its range, for diagnostics


def seconds(duration: str) -> float:
    """A Prometheus duration ('1h30m', '500ms') in seconds."""
    return sum(
        int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", duration)
    )


def number(value: float) -> str:
    """A float as PromQL reads it back exactly ('20.0', '0.2', '1e-05')."""
    return repr(float(value))


def reach(metric: str, spec: Any) -> Reach:
    """The lowest and highest value the server can show for an alert metric.

    A latency quantile comes from the server-time histogram: a quantile in its first bucket is
    interpolated from 0 (so it is at least q x 1 ms) and one in +Inf reads as the highest
    finite bucket (10 s). The queue refuses images beyond its capacity, per worker process.
    """
    if metric.startswith("latency_p"):
        q = metric.removeprefix("latency_").removesuffix("_ms")
        low = m.LATENCY_QUANTILES[q] * m.LATENCY_BUCKETS[0] * 1000
        high = m.LATENCY_BUCKETS[-1] * 1000
        text = (
            f"the {q} of the server's time per {m.PREDICT_ROUTE} request in ms (body received "
            "to answer), read from its histogram: "
            f"from {low:g} to {high:g} (its highest finite bucket is {high / 1000:g} s)"
        )
        return Reach(low, high, text)
    if metric == "queue_depth":
        from pathlib import Path

        from cvspec.serve.config import MIN_QUEUE, QUEUE_BATCHES, ServeConfig

        serve = spec.serve
        capacity = ServeConfig(Path(), max_batch=serve.max_batch).queue_capacity
        text = (
            "the number of images waiting for a batch, from 0 to the queue's capacity: "
            f"max({MIN_QUEUE}, {QUEUE_BATCHES} x serve.max_batch) = {capacity}"
        )
        if serve.workers > 1:
            text += f" per worker, {capacity * serve.workers} for {serve.workers} workers"
        return Reach(0, capacity * serve.workers, text)
    fixed = {
        "error_rate": (1, f"the share of {m.PREDICT_ROUTE} answers that are 5xx, from 0 to 1"),
        "mean_confidence": (1, "the mean top-1 confidence, a probability from 0 to 1"),
        "request_rate": (math.inf, f"{m.PREDICT_ROUTE} requests per second, 0 or more"),
    }
    drift = (math.inf, "a shift in training standard deviations, 0 or more")  # the *_drift metrics
    high, text = fixed.get(metric, drift)
    return Reach(0, high, text)


# How far back an alert on a windowed metric (a latency quantile, the error ratio, the mean
# confidence) looks for its last value, and a drift alert for traffic: a client that sends
# bursts up to this far apart still gets its alerts, as their `for` no longer restarts in each
# gap; an alert holds the value of the last window with traffic this long after traffic stops.
HOLD = "1h"


def windowed(metric: str) -> bool:
    """True for the metrics recorded over a window of requests, absent while none arrive."""
    return metric.startswith("latency_p") or metric in ("error_rate", "mean_confidence")


def metric_expr(metric: str, job: str, exclude: tuple[str, ...] = ()) -> str:
    """The PromQL that gives one value of an alert metric per job (or per series); input_drift
    leaves out the statistics in `exclude`.

    A windowed metric reads the last value recorded within HOLD: its recording rule has no
    value over a window without (enough) requests, so the gaps of bursty traffic keep the last
    burst's value instead of resetting the alert.
    """
    sel = f'job="{job}"'
    if metric.startswith("latency_p"):
        quantile = metric.removeprefix("latency_").removesuffix("_ms")
        return f"last_over_time({m.RECORDED_LATENCY.format(q=quantile)}{{{sel}}}[{HOLD}]) * 1000"
    if metric.endswith("_drift") and metric != "input_drift":
        return f'{m.DRIFT}{{{sel},stat="{metric.removesuffix("_drift")}"}}'
    if metric == "input_drift" and exclude:
        other = f'stat!="{exclude[0]}"' if len(exclude) == 1 else f'stat!~"{"|".join(exclude)}"'
        return f"{m.DRIFT}{{{sel},{other}}}"
    simple = {
        "error_rate": m.RECORDED_ERROR_RATIO,
        "request_rate": m.RECORDED_REQUEST_RATE,
        "mean_confidence": m.RECORDED_MEAN_CONFIDENCE,
        "queue_depth": m.QUEUE_DEPTH,
        "input_drift": m.DRIFT,
    }
    expr = f"{simple[metric]}{{{sel}}}"
    return f"last_over_time({expr}[{HOLD}])" if windowed(metric) else expr


def health_expr(kind: str, job: str) -> str:
    """The condition of a CONDITIONS alert: the target fails its scrapes, is gone, has no
    model, or has no drift baseline.

    A server whose model failed to load still answers /metrics (and /health with 503) but never
    sets cvspec_model_info; a dead one leaves only Prometheus' `up` at 0. A server without
    the data stage's stats.json exports cvspec_drift_baseline_images 0 and no drift gauges.
    """
    sel = f'job="{job}"'
    up = f"{m.UP}{{{sel}}}"
    conditions = {
        "target_down": f"{up} == 0",
        "target_missing": f"absent({up})",
        "model_not_loaded": f"{up} == 1 unless on (job, instance) {m.MODEL_INFO}{{{sel}}}",
        NO_BASELINE: f"{m.BASELINE_IMAGES}{{{sel}}} == 0",
    }
    return conditions[kind]


# Least /predict traffic (requests per second over 5m) an alert needs to mean anything:
# one failed request out of two is not an outage worth a page (the error ratio is recorded
# only over 5m windows with this much traffic), and a drift gauge keeps the value of the last
# images it saw after traffic stops (a drift alert needs some traffic within HOLD).
MIN_TRAFFIC = {"error_rate": 0.1}


def min_traffic(metric: str) -> float | None:
    """The request rate an alert on `metric` needs (0: any traffic at all), or None."""
    return 0.0 if metric.endswith("_drift") else MIN_TRAFFIC.get(metric)


def alert_expr(rule: AlertRule, job: str) -> str:
    """The alert condition: the metric outside [min, max] (or a CONDITIONS one); a drift
    alert also needs /predict traffic within HOLD (the error ratio carries its own guard)."""
    if rule.metric in CONDITIONS:
        return health_expr(rule.metric, job)
    expr = metric_expr(rule.metric, job, rule.exclude)
    low = f"{expr} < {number(rule.min)}" if rule.min is not None else None
    high = f"{expr} > {number(rule.max)}" if rule.max is not None else None
    condition = f"({low}) or ({high})" if low and high else low or high or ""
    if not rule.metric.endswith("_drift"):
        return condition
    traffic = f'max_over_time({m.RECORDED_REQUEST_RATE}{{job="{job}"}}[{HOLD}])'
    return f"({condition}) and on (job) {traffic} > 0"


def recording_rules(job: str) -> list[dict[str, str]]:
    """The series alerts read: latency quantiles, error ratio, request rate, mean confidence."""
    predict = f'job="{job}",route="{m.PREDICT_ROUTE}"'
    # the server's own part of /predict: a client's slow upload does not page anyone
    buckets = f'sum by (job, le) (rate({m.SERVER_SECONDS}_bucket{{job="{job}"}}[5m]))'
    # `>= 0` drops the NaN of a window without requests: no value, rather than one that
    # restarts every alert's `for` (alerts read the last value, metric_expr)
    rules = [
        {
            "record": m.RECORDED_LATENCY.format(q=name),
            "expr": f"histogram_quantile({q}, {buckets}) >= 0",
        }
        for name, q in m.LATENCY_QUANTILES.items()
    ]
    rate = f"rate({m.REQUESTS}{{{predict}}}[5m])"
    requests = f"sum by (job) ({rate})"
    # 5xx over all answers, 0 while no 5xx series exists yet (a fresh server); recorded only
    # over windows with MIN_TRAFFIC requests/s
    errors = f'sum by (job) (rate({m.REQUESTS}{{{predict},status=~"5.."}}[5m]) or {rate} * 0)'
    least = number(MIN_TRAFFIC["error_rate"])
    conf = f'job="{job}"'
    rules += [
        {"record": m.RECORDED_ERROR_RATIO, "expr": f"{errors} / ({requests} >= {least})"},
        {"record": m.RECORDED_REQUEST_RATE, "expr": requests},
        {
            "record": m.RECORDED_MEAN_CONFIDENCE,
            "expr": f"sum by (job) (rate({m.CONFIDENCE}_sum{{{conf}}}[15m])) / "
            f"(sum by (job) (rate({m.CONFIDENCE}_count{{{conf}}}[15m])) > 0)",
        },
    ]
    return rules


def alert_rules(spec: Any) -> list[AlertRule]:
    """The spec's monitor.alerts, then the alerts its gates imply unless one already covers it.

    The default drift alert (input_drift, every statistic) leaves out the statistics the
    spec's own alerts watch (brightness_drift, ...): one drift, one alert.
    """
    own = [_own(i, a) for i, a in enumerate(spec.monitor.alerts)]
    names, metrics = {a.name for a in own}, {a.metric for a in own}
    watched = tuple(s for s in m.DRIFT_STATS if f"{s}_drift" in metrics)
    derived = []
    for rule in _derived(spec):
        if rule.name in names or rule.metric in metrics:
            continue
        if rule.metric == "input_drift" and watched:
            if len(watched) == len(m.DRIFT_STATS):
                continue
            summary = rule.summary.replace(
                "an input statistic", f"an input statistic other than {', '.join(watched)}"
            )
            rule = rule._replace(exclude=watched, summary=summary)
        derived.append(rule)
    drift = [r.name for r in own + derived if r.metric.endswith("_drift")]
    if drift and NO_BASELINE_RULE.name not in names:
        told = NO_BASELINE_RULE.advice.replace("ALERTS", ", ".join(drift))
        derived.append(NO_BASELINE_RULE._replace(advice=told))
    return own + derived


NO_BASELINE_RULE = AlertRule(
    "DriftBaselineMissing",
    NO_BASELINE,
    None,
    None,
    "15m",
    "ticket",
    "the model server has no drift baseline: input drift is not measured",
    DEFAULT_ORIGIN,
    (),
    "ALERTS cannot fire without it. The server looks for the data stage's stats.json beside "
    "the model (stats.json, ../data/stats.json) or takes --baseline PATH; the server log says "
    "so at start, and the dashboard's Baseline images reads 0.",
)


def _own(index: int, alert: Any) -> AlertRule:
    where = f"monitor.alerts[{index}]"
    if alert.metric not in m.ALERT_METRICS:
        known = ", ".join(sorted(m.ALERT_METRICS))
        raise CvspecError(
            f"{where} ({alert.name}): unknown metric '{alert.metric}'; use one of {known}"
        )
    summary = f"{alert.metric} is {metric_bounds(alert.metric, alert.min, alert.max)}"
    key = ("monitor", "alerts", index)
    return AlertRule(
        alert.name,
        alert.metric,
        alert.min,
        alert.max,
        alert.for_,
        alert.severity,
        summary,
        f"monitor.alerts[name={alert.name}]",  # by name: adding an alert renumbers none
        key,
        alert.description or advice(alert.metric),  # the spec's text, else cvspec's advice
    )


def _derived(spec: Any) -> list[AlertRule]:
    """The alerts the gates imply, then the defaults every server gets (errors, drift, health)."""
    gates, rows, default = spec.evaluate.gates, [], DEFAULT_ORIGIN
    for q, severity in (("p50", "ticket"), ("p95", "page")):
        metric, name = f"latency_{q}_ms", f"Latency{q.upper()}OutsideGate"
        if (gate := getattr(gates, metric, None)) is not None:
            bounds = metric_bounds(metric, gate.min, gate.max)  # in ms, the gate's unit
            text = f"{q} server time of {m.PREDICT_ROUTE} is {bounds}"
            origin, key = f"evaluate.gates.{metric}", ("evaluate", "gates", metric)
            rows.append(
                AlertRule(
                    name,
                    metric,
                    gate.min,
                    gate.max,
                    "10m",
                    severity,
                    text,
                    origin,
                    key,
                    GATE_LATENCY_ADVICE,
                )
            )
    errors, drift = DEFAULT_ERROR_RATE, DEFAULT_DRIFT
    text = f"more than {errors:.0%} of {m.PREDICT_ROUTE} answers are errors (5xx)"
    rows.append(
        AlertRule(
            "HighErrorRate",
            "error_rate",
            None,
            errors,
            "5m",
            "page",
            text,
            default,
            (),
            ADVICE["error_rate"],
        )
    )
    if spec.task == "classification":
        floor, origin = _confidence_floor(gates)
        text = f"mean top-1 confidence fell below {floor:g}"
        rows.append(
            AlertRule(
                "ConfidenceCollapse",
                "mean_confidence",
                floor,
                None,
                "15m",
                "ticket",
                text,
                origin,
                (),
                ADVICE["mean_confidence"],
            )
        )
    text = (
        f"an input statistic moved more than {drift:g} training standard deviations from training"
    )
    rows.append(
        AlertRule(
            "InputDistributionDrift",
            "input_drift",
            None,
            drift,
            "30m",
            "ticket",
            text,
            default,
            (),
            ADVICE["drift"],
        )
    )
    health = [
        (
            "TargetDown",
            "3m",
            "Prometheus cannot scrape the model server: it is down or unreachable",
            "Check that the server's container or process runs (its log says why it stopped) "
            "and that Prometheus reaches its metrics port.",
        ),
        (
            "TargetMissing",
            "5m",
            "Prometheus has no model server to scrape: its target is gone",
            "Prometheus' configuration or service discovery lost the server: check "
            "prometheus.yml and the deployment that should run it.",
        ),
        (
            "ModelNotLoaded",
            "5m",
            "the model server runs without a model: it failed to load (/health answers 503)",
            "GET /health names the error and the server log has the traceback: the model "
            "files may be missing, corrupt or from another export.",
        ),
    ]
    for (name, for_, text, what), kind in zip(health, HEALTH, strict=True):
        rows.append(AlertRule(name, kind, None, None, for_, "page", text, default, (), what))
    return rows


def _confidence_floor(gates: Any) -> tuple[float, str]:
    """A calibrated model's mean confidence tracks its accuracy to within its ECE."""
    accuracy, ece = getattr(gates, "accuracy", None), getattr(gates, "ece", None)
    if accuracy is None or accuracy.min is None:
        return DEFAULT_CONFIDENCE, DEFAULT_ORIGIN
    slack = ece.max if ece is not None and ece.max is not None else 0.1
    origin = "evaluate.gates.accuracy" + (" - evaluate.gates.ece" if ece is not None else " - 0.1")
    return round(max(0.05, accuracy.min - slack), 6), origin


PERCENT_UNITS = ("ratio", "probability")  # alert metrics whose values read in percent


def metric_bounds(metric: str, low: float | None, high: float | None) -> str:
    """bounds_text in the unit the metric's values read in: 'above 5%', 'above 40 images'."""
    unit = m.ALERT_METRICS.get(metric, "")
    percent = unit in PERCENT_UNITS
    return bounds_text(low, high, percent, "" if percent else unit)


def bounds_text(
    low: float | None, high: float | None, percent: bool = False, unit: str = ""
) -> str:
    """'below 1 or above 5': where an alert with these bounds fires ('above 5%', `percent`;
    'below 1 or above 5 ms', `unit`)."""

    def shown(value: float) -> str:
        return f"{value * 100:g}%" if percent else f"{value:g}"

    parts = [
        f"below {shown(low)}" if low is not None else "",
        f"above {shown(high)}" if high is not None else "",
    ]
    return " or ".join(p for p in parts if p) + (f" {unit}" if unit else "")
