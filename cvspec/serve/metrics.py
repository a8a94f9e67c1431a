"""The server's Prometheus metrics (names from metric_names), in one or several processes."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvspec.serve import metric_names as m
from cvspec.serve.drift import WINDOW

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set: workers share metrics through files there


def _uncounted(reason: str) -> None:
    pass


# Counts a connection the HTTP protocol closes before the app sees a request (protocol.py), by
# reason: a server process's ServerMetrics.connection_closed once its app is built (app.py).
count_closed: Callable[[str], None] = _uncounted


def multiprocess() -> bool:
    """True when worker processes share metrics (prometheus-client's multiprocess mode)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape_registry() -> Any:
    """The registry a /metrics endpoint collects: this process's, or every worker's files."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def forget_dead_workers() -> None:
    """Drop the gauges of worker processes that are gone: a worker killed (OOM, SIGKILL) never
    marks itself dead, and its last queue depth and drift stayed in every scrape after uvicorn
    replaced it. Their counters and histograms stay: those never go backwards."""
    from prometheus_client.multiprocess import mark_process_dead

    pids = set()
    for path in Path(os.environ[MULTIPROC_ENV]).glob("gauge_live*_*.db"):
        digits = path.stem.rsplit("_", 1)[1]
        if digits.isdigit():
            pids.add(int(digits))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's (a reused pid)
            pass


class ServerMetrics:
    """Every metric the server exports, created once per process."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        shared = multiprocess()
        if shared:  # a new worker, maybe in place of one that died
            forget_dead_workers()
        self.registry = scrape_registry() if shared else CollectorRegistry()
        reg = None if shared else self.registry
        if not shared:
            ProcessCollector(registry=self.registry)

        def hist(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Any:
            return Histogram(name, doc, labels, buckets=buckets, registry=reg)

        self.requests = Counter(
            m.REQUESTS, "HTTP requests by route and status", ("route", "status"), registry=reg
        )
        self.closed = Counter(
            m.CONNECTIONS_CLOSED,
            "Connections closed before a complete request head, by reason (never requests)",
            ("reason",),
            registry=reg,
        )
        self.latency = hist(
            m.REQUEST_SECONDS,
            "HTTP request latency, from the request's start (its upload included) to the answer",
            m.LATENCY_BUCKETS,
            ("route",),
        )
        self.server = hist(
            m.SERVER_SECONDS,
            "Server time of a /predict request: from its body fully received to its answer "
            "(decode, queue, batch, model)",
            m.LATENCY_BUCKETS,
        )
        self.inference = hist(m.INFERENCE_SECONDS, "Model call time per batch", m.LATENCY_BUCKETS)
        self.batch = hist(m.BATCH_SIZE, "Images per model call", m.BATCH_BUCKETS)
        self.queue = Gauge(
            m.QUEUE_DEPTH, "Images waiting for a batch", registry=reg, multiprocess_mode="livesum"
        )
        self.decoding = Gauge(
            m.DECODE_PIXELS,
            "Pixels of the images being decoded now (the decode budget bounds it)",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(m.PREDICTIONS, "Predictions by class", ("class",), registry=reg)
        self.confidence = hist(
            m.CONFIDENCE, "Top-1 confidence (per box for detection)", m.CONFIDENCE_BUCKETS
        )
        self.inputs = {
            "brightness": hist(m.INPUT_BRIGHTNESS, "Input mean grey level, 0..1", m.UNIT_BUCKETS),
            "contrast": hist(
                m.INPUT_CONTRAST, "Input grey standard deviation, 0..1", m.UNIT_BUCKETS
            ),
            "width": hist(m.INPUT_WIDTH, "Input width in pixels", m.SIZE_BUCKETS),
            "height": hist(m.INPUT_HEIGHT, "Input height in pixels", m.SIZE_BUCKETS),
        }
        self.drift = Gauge(
            m.DRIFT,
            f"|Live mean - training mean| of the last {WINDOW} images, in training standard "
            f"deviations (none until a worker has seen {WINDOW})",
            ("stat",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.baseline = Gauge(
            m.BASELINE_IMAGES,
            "Images in the drift baseline (0: none)",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.model = Gauge(
            m.MODEL_INFO,
            "The model served (value 1)",
            ("name", "version", "task"),
            registry=reg,
            multiprocess_mode="livemax",
        )

    def prime(self, labels: tuple[str, ...]) -> None:
        """Create the usual series at 0, so the first requests already count in rate()."""
        for route in m.ROUTES:
            self.latency.labels(route)
            self.requests.labels(route, "200")
        for label in labels:
            self.predictions.labels(label)
        for reason in m.CLOSE_REASONS:
            self.closed.labels(reason)

    def connection_closed(self, reason: str) -> None:
        """Count one connection closed before its request head was complete (protocol.py)."""
        self.closed.labels(reason).inc()

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request and its latency."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def served(self, seconds: float) -> None:
        """Record the server's own time for one /predict request whose body arrived."""
        self.server.observe(seconds)

    def batch_done(self, size: int, seconds: float) -> None:
        """Record one model call."""
        self.batch.observe(size)
        self.inference.observe(seconds)

    def predicted(self, found: Sequence[tuple[str, float]]) -> None:
        """Record a batch's predictions (label, confidence): one per image, or one per box."""
        for label, times in collections.Counter(label for label, _ in found).items():
            self.predictions.labels(label).inc(times)
        for _, confidence in found:
            self.confidence.observe(confidence)

    def input_seen(self, stats: dict[str, float]) -> None:
        """Record one input image's statistics."""
        for key, histogram in self.inputs.items():
            histogram.observe(stats[key])

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
