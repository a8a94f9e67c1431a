"""Input series that make each alert fire, and series that keep it calm, for promtool tests."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from cvspec.serve import metric_names as m
from cvspec.serve.alerts import (
    CONDITIONS,
    DEFAULT_ORIGIN,
    NO_BASELINE,
    PERCENT_UNITS,
    AlertRule,
    Reach,
    alert_rules,
    metric_bounds,
    min_traffic,
    reach,
    seconds,
    windowed,
)
from cvspec.serve.dashboard import panel_id

INSTANCE = "server:9090"
PER_MINUTE = 1000  # requests per minute in synthetic counters: error ratios resolve to 0.001
BURST_EVERY = 10  # minutes between the bursts of the bursty cases (the same requests in all)
BURSTY_MINUTES = 180  # how long the bursty cases run, unless an alert's `for` needs longer
Series = list[dict[str, str]]
Case = tuple[Series, float]  # input series, and the value the alert reads from them (or nan)


def rule_tests(spec: Any, job: str, rule_file: str, spec_file: str) -> dict[str, Any]:
    """A `promtool test rules` file: per alert, one case that fires and one that does not."""
    tests: list[dict[str, Any]] = []
    for rule in alert_rules(spec):
        for_minutes = math.ceil(seconds(rule.for_) / 60)
        minutes = for_minutes + 20  # past `for` and the 15m windows
        labels = {"job": job, "severity": rule.severity}
        cases = [("fires", True), ("stays quiet", False)]
        if min_traffic(rule.metric) is not None:
            cases.append(("stays quiet on too little traffic", True))
        if bursty(rule.metric):
            cases += [("fires on bursty traffic", True), ("stays quiet on bursty traffic", False)]
        left = rule.exclude[0] if rule.exclude else None  # drift the spec's own alert watches
        if left:
            cases.append((f"stays quiet on {left} drift, left to the spec's alert", True))
        for case, fires in cases:
            series, value = _series(rule, spec, job, fires, minutes)
            if fires and not series:  # validation rejects such bounds (rules.py: alert-range)
                raise RuntimeError(f"no input series can make {rule.name} fire ({rule.origin})")
            expected: list[dict[str, Any]] = []
            at = minutes
            if case.endswith("bursty traffic"):  # the same values, every request in bursts
                span = max(BURSTY_MINUTES, -(-(for_minutes + 60) // BURST_EVERY) * BURST_EVERY)
                series, at = _bursts(series, span), span - 1  # just before a burst: the longest gap
            if case.startswith("fires"):
                grafana = spec.monitor.grafana_url
                panel = panel_id(spec, rule.metric)
                shown = alert_annotations(rule, job, spec_file, True, value, grafana, panel)
                expected = [
                    {"exp_labels": {**labels, **_extra_labels(rule)}, "exp_annotations": shown}
                ]
            elif left and case.endswith("spec's alert"):  # the same values on that statistic
                here = f'stat="{_stat(rule)}"'
                series = [
                    {**s, "series": s["series"].replace(here, f'stat="{left}"')} for s in series
                ]
            elif fires:  # the same values on a trickle of requests
                series = _sparse(series, minutes)
            tests.append(
                {
                    "name": f"{rule.name} {case}",
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [
                        {"eval_time": f"{at}m", "alertname": rule.name, "exp_alerts": expected}
                    ],
                }
            )
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def alert_annotations(
    rule: AlertRule,
    job: str,
    spec_file: str,
    rendered: bool = False,
    value: float = math.nan,
    grafana: str | None = None,
    panel: int | None = None,
) -> dict[str, str]:
    """The alert's annotations, Go templates with the spec's text escaped; or, `rendered`, as
    Prometheus renders them for `value` on the rule tests' instance.

    summary: what is wrong; description: the value and where, then what to do; dashboard: the
    project's Grafana dashboard (on `grafana`, monitor.grafana_url, else its path), opened on
    the alert's `panel` (its id) where it has one; source: the spec key the alert came from.
    """
    from cvspec.serve.dashboard import dashboard_uid

    def fixed(text: str) -> str:
        return text if rendered else text.replace("{{", '{{ "{{" }}')

    description = _observed(rule, job, rendered, _value(rule, value if rendered else None))
    if rule.advice:
        description += f". {fixed(rule.advice)}"
    source = (
        f"{rule.origin} for {spec_file}"
        if rule.origin == DEFAULT_ORIGIN
        else (f"{spec_file}: {rule.origin}")
    )
    return {
        "summary": fixed(rule.summary),
        "description": description,
        "dashboard": f"{(grafana or '').rstrip('/')}/d/{dashboard_uid(job)}"
        + (f"?viewPanel={panel}" if panel is not None else ""),
        "source": source,
    }


def _value(rule: AlertRule, value: float | None) -> str:
    """The alert's value: a template (value None) or as the template prints `value`."""
    unit = m.ALERT_METRICS.get(rule.metric, "")
    if unit in PERCENT_UNITS:  # humanizePercentage is Go's %.4g of value x 100
        return "{{ $value | humanizePercentage }}" if value is None else f"{value * 100:.4g}%"
    shown = '{{ $value | printf "%.5g" }}' if value is None else f"{value:.5g}"
    return f"{shown} {unit}"


def _observed(rule: AlertRule, job: str, rendered: bool, value: str) -> str:
    """What Prometheus saw: the value and the instance (or the job, for a job-wide series)."""

    def label(name: str) -> str:  # as the rule tests' series carry it, or a template
        return _extra_labels(rule)[name] if rendered else f"{{{{ $labels.{name} }}}}"

    if rule.metric == "target_down":
        return f"Prometheus has failed to scrape {label('instance')} (job {job}) for {rule.for_}"
    if rule.metric == "target_missing":
        return f"Prometheus has had no target for job {job} for {rule.for_}"
    if rule.metric == "model_not_loaded":
        return f"{label('instance')} (job {job}) has answered without a model for {rule.for_}"
    if rule.metric == NO_BASELINE:
        return f"{label('instance')} (job {job}) has had no drift baseline for {rule.for_}"
    where = f"on {label('instance')}" if _extra_labels(rule) else f"for job {job}"
    metric = rule.metric
    if metric == "input_drift":  # one series per statistic
        metric += f" of {label('stat')}"
    bounds = metric_bounds(rule.metric, rule.min, rule.max)  # as its value: 7.5%, above 5%
    return f"{metric} is {value} {where} (alerting {bounds})"


def _extra_labels(rule: AlertRule) -> dict[str, str]:
    if rule.metric in CONDITIONS:
        return {} if rule.metric == "target_missing" else {"instance": INSTANCE}
    if rule.metric.endswith("_drift"):
        return {"instance": INSTANCE, "stat": _stat(rule)}
    return {"instance": INSTANCE} if rule.metric == "queue_depth" else {}


def _stat(rule: AlertRule) -> str:
    """The statistic a drift alert's cases drift: its own, or input_drift's first one."""
    if rule.metric != "input_drift":
        return rule.metric.removesuffix("_drift")
    return next(s for s in m.DRIFT_STATS if s not in rule.exclude)


def _series(rule: AlertRule, spec: Any, job: str, fires: bool, minutes: int) -> Case:
    if rule.metric in CONDITIONS:
        return _health(rule, job, spec.task, fires, minutes + 5), math.nan
    target = _target(rule, reach(rule.metric, spec), fires)
    if target is None:
        return [], math.nan
    if rule.metric.startswith("latency_p"):
        return _latency(rule, job, fires, minutes)
    labels = f'job="{job}",instance="{INSTANCE}"'
    n = minutes + 5
    route = f'{labels},route="{m.PREDICT_ROUTE}"'
    if rule.metric.endswith("_drift"):  # drift counts only while images arrive
        stat = _stat(rule)
        traffic = _one(f'{m.REQUESTS}{{{route},status="200"}}', 0, PER_MINUTE, n)
        return [_one(f'{m.DRIFT}{{{labels},stat="{stat}"}}', target, 0, n), traffic], target
    if rule.metric == "queue_depth":
        return [_one(f"{m.QUEUE_DEPTH}{{{labels}}}", target, 0, n)], target
    if rule.metric == "mean_confidence":
        return [
            _one(f"{m.CONFIDENCE}_sum{{{labels}}}", 0, target * 60, n),
            _one(f"{m.CONFIDENCE}_count{{{labels}}}", 0, 60, n),
        ], target
    if rule.metric == "request_rate":
        return [_one(f'{m.REQUESTS}{{{route},status="200"}}', 0, target * 60, n)], target
    errors = round(target * PER_MINUTE)  # error_rate
    return [
        _one(f'{m.REQUESTS}{{{route},status="200"}}', 0, PER_MINUTE - errors, n),
        _one(f'{m.REQUESTS}{{{route},status="500"}}', 0, errors, n),
    ], errors / PER_MINUTE


def bursty(metric: str) -> bool:
    """Alerts whose rule tests include traffic in bursts: those on windows of requests (and
    drift, which needs traffic), not the request rate (bursts do lower it) or a gauge."""
    return windowed(metric) or metric.endswith("_drift")


def _bursts(series: Series, minutes: int) -> Series:
    """The series over `minutes` (+1 samples), each counter's requests in one burst every
    BURST_EVERY minutes (the same average rate, so ratios and quantiles read the same);
    gauges stay as they are."""
    out = []
    for one in series:
        start, rest = one["values"].split("+", 1)
        step = float(rest.split("x", 1)[0])
        if step == 0:
            out.append(_one(one["series"], float(start), 0, minutes))
            continue
        jump = step * BURST_EVERY
        levels = [float(start) + jump * k for k in range(minutes // BURST_EVERY + 1)]
        held = [f"{level!r}x{BURST_EVERY - 1}" for level in levels[:-1]]  # 10 samples each
        out.append({"series": one["series"], "values": " ".join([*held, repr(levels[-1])])})
    return out


def _sparse(series: Series, minutes: int) -> Series:
    """The series of a firing case on too little traffic for the alert (MIN_TRAFFIC): no
    requests at all beside a drift gauge, or one request a minute, every other one failing."""
    others = [s for s in series if not s["series"].startswith(m.REQUESTS)]
    requests = [s for s in series if s["series"].startswith(m.REQUESTS)]
    if not others:  # error_rate: keep the ratio, lose the volume
        ok, failed = requests
        n = minutes + 5
        return [
            _one(ok["series"], 0, 0.5, n),
            _one(failed["series"], 0, 0.5, n),
        ]
    return others


def _health(rule: AlertRule, job: str, task: str, fires: bool, n: int) -> Series:
    """A target that is down (or up), gone (or there), up without (or with) its model, or
    without (or with) a drift baseline."""
    up = f'{m.UP}{{job="{job}",instance="{INSTANCE}"}}'
    if rule.metric == "target_down":
        return [_one(up, 0 if fires else 1, 0, n)]
    if rule.metric == "target_missing":  # another job's target is still scraped
        return [_one(up.replace(f'job="{job}"', 'job="other"') if fires else up, 1, 0, n)]
    if rule.metric == NO_BASELINE:  # a server without stats.json, or with 1,257 images in it
        baseline = f'{m.BASELINE_IMAGES}{{job="{job}",instance="{INSTANCE}"}}'
        return [_one(up, 1, 0, n), _one(baseline, 0 if fires else 1257, 0, n)]
    labels = f'job="{job}",instance="{INSTANCE}",name="{job}",version="0",task="{task}"'
    return [_one(up, 1, 0, n)] + ([] if fires else [_one(f"{m.MODEL_INFO}{{{labels}}}", 1, 0, n)])


def _one(series: str, start: float, step: float, n: int) -> dict[str, str]:
    return {"series": series, "values": f"{start!r}+{float(step)!r}x{n}"}


def _target(rule: AlertRule, span: Reach, fires: bool) -> float | None:
    """A value well inside the bounds (calm), or well outside them (fires); None: impossible."""
    low, high, top = rule.min, rule.max, span.high
    if not fires:
        lo = max(low, span.low) if low is not None else span.low
        hi = min(high, top) if high is not None else top
        if lo > hi:
            return None
        return (lo + hi) / 2 if math.isfinite(hi) else (lo * 2 if lo > 0 else 1.0)
    if high is not None and high < top:
        value = (high + top) / 2 if math.isfinite(top) else (high * 2 if high > 0 else 1.0)
        return _short(value, lambda v: high < v <= top)
    if low is not None and low > span.low:
        return _short((low + span.low) / 2, lambda v: span.low <= v < low)
    return None


def _short(value: float, fires: Callable[[float], bool]) -> float:
    """The value to 3 significant digits if that still fires: annotations print it exactly."""
    short = float(f"{value:.3g}")
    return short if fires(short) else value


def _latency(rule: AlertRule, job: str, fires: bool, minutes: int) -> Case:
    """Histogram buckets with every request in one bucket, chosen so the quantile fits."""
    q = m.LATENCY_QUANTILES[rule.metric.split("_")[1]]
    ok = _violates(rule) if fires else (lambda v: not _violates(rule)(v))
    bounds = (0.0, *m.LATENCY_BUCKETS)
    # in a finite bucket the quantile is interpolated; in +Inf it reads as the highest bound
    reads = [(lo + (hi - lo) * q, hi) for lo, hi in itertools.pairwise(bounds)]
    for value, hi in [*reads, (m.LATENCY_BUCKETS[-1], math.inf)]:
        if ok(value * 1000):
            labels = f'job="{job}",instance="{INSTANCE}"'
            name = f"{m.SERVER_SECONDS}_bucket"
            out = [
                _one(f'{name}{{{labels},le="{b!r}"}}', 0, 60 if b >= hi else 0, minutes + 5)
                for b in m.LATENCY_BUCKETS
            ]
            inf = _one(f'{name}{{{labels},le="+Inf"}}', 0, 60, minutes + 5)
            return [*out, inf], value * 1000
    return [], math.nan


def _violates(rule: AlertRule) -> Callable[[float], bool]:
    def check(value: float) -> bool:
        return (rule.min is not None and value < rule.min) or (
            rule.max is not None and value > rule.max
        )

    return check
