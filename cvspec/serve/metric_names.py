"""The metrics the server exports: the one contract of the server, alert rules and dashboard."""

from __future__ import annotations

# Sample names as Prometheus stores them (counters with _total, histograms as their base name).
REQUESTS = "cvspec_requests_total"  # counter {route, status}
REQUEST_SECONDS = "cvspec_request_duration_seconds"  # histogram {route}: the client's view
# histogram: a /predict request from its body fully received to its answer (decode, queue,
# batch, model): the server's own part, which slow uploads do not stretch; latency alerts read it
SERVER_SECONDS = "cvspec_server_duration_seconds"
INFERENCE_SECONDS = "cvspec_inference_duration_seconds"  # histogram: one model call per batch
BATCH_SIZE = "cvspec_batch_size"  # histogram: images per model call
QUEUE_DEPTH = "cvspec_queue_depth"  # gauge: images waiting for a batch
DECODE_PIXELS = "cvspec_decode_pixels"  # gauge: pixels being decoded now (<= 2 x max_pixels)
PREDICTIONS = "cvspec_predictions_total"  # counter {class}
CONFIDENCE = "cvspec_prediction_confidence"  # histogram: top-1 probability (per box: detection)
INPUT_BRIGHTNESS = "cvspec_input_brightness"  # histogram: mean grey level, 0..1
INPUT_CONTRAST = "cvspec_input_contrast"  # histogram: grey standard deviation, 0..1
INPUT_WIDTH = "cvspec_input_width_pixels"  # histogram
INPUT_HEIGHT = "cvspec_input_height_pixels"  # histogram
# gauge {stat}: |live mean - training mean| / training std over a full window of images
DRIFT = "cvspec_input_drift"
BASELINE_IMAGES = "cvspec_drift_baseline_images"  # gauge: images in the drift baseline, 0: none
# counter {reason}: connections closed before the app saw a request, so not in REQUESTS:
# head_timeout (a head begun and not finished in time: slowloris), head_too_large (431),
# bad_request (bytes that are not HTTP: uvicorn answers 400 itself and closes)
CONNECTIONS_CLOSED = "cvspec_connections_closed_total"
CLOSE_REASONS = ("head_timeout", "head_too_large", "bad_request")
MODEL_INFO = "cvspec_model_info"  # gauge = 1 {name, version, task}, set once the model loaded
UP = "up"  # not the server's: Prometheus writes it per target and scrape, 1 scraped, 0 failed

HISTOGRAMS = (
    REQUEST_SECONDS,
    SERVER_SECONDS,
    INFERENCE_SECONDS,
    BATCH_SIZE,
    CONFIDENCE,
    INPUT_BRIGHTNESS,
    INPUT_CONTRAST,
    INPUT_WIDTH,
    INPUT_HEIGHT,
)
EXPORTED = (
    REQUESTS,
    CONNECTIONS_CLOSED,
    QUEUE_DEPTH,
    DECODE_PIXELS,
    PREDICTIONS,
    DRIFT,
    BASELINE_IMAGES,
    MODEL_INFO,
    *HISTOGRAMS,
)

PREDICT_ROUTE = "/predict"
ROUTES = (PREDICT_ROUTE, "/health", "/metrics")
OTHER_ROUTE = "other"  # any other path: keeps the route label's values bounded
DRIFT_STATS = ("brightness", "contrast", "width", "height")  # the keys of data/stats.json

LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
UNIT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
SIZE_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

# Recording rules (level:metric:operation); alerts read these, the dashboard reads raw metrics.
LATENCY_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
RECORDED_LATENCY = "job:cvspec_server_duration_seconds:{q}_5m"
RECORDED_ERROR_RATIO = "job:cvspec_request_errors:ratio_5m"
RECORDED_REQUEST_RATE = "job:cvspec_requests:rate_5m"
RECORDED_MEAN_CONFIDENCE = "job:cvspec_prediction_confidence:mean_15m"

# What `monitor.alerts[].metric` may name: the metric -> its unit, for messages and panels.
ALERT_METRICS = {
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "error_rate": "ratio",
    "request_rate": "requests/s",
    "mean_confidence": "probability",
    "queue_depth": "images",
    "input_drift": "training standard deviations",
    **{f"{stat}_drift": "training standard deviations" for stat in DRIFT_STATS},
}
