"""Start the server: uvicorn on the API port, Prometheus on the metrics port, 1..N workers."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from typing import Any

from cvspec.errors import CvspecError
from cvspec.serve.config import ServeConfig
from cvspec.serve.model import read_model_dir

KEEP_ALIVE_S = 5


def check_port(host: str, port: int, what: str) -> None:
    """A clear error now rather than a uvicorn traceback later when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CvspecError(f"cannot serve the {what} on {host}:{port}: {exc.strerror}") from None


def serve(config: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    level = os.environ.get("CVSPEC_LOG_LEVEL", "info")
    logging.basicConfig(format="%(levelname)s:     %(message)s", level=level.upper())
    files = read_model_dir(config.model_dir)  # fail now, not in a worker
    if files.pre.fit == "letterbox":  # a detector: its letterbox resizes with OpenCV
        from cvspec.preprocess import opencv

        opencv()
    check_port(config.host, config.port, "API")
    if config.metrics_port is not None:
        check_port(config.host, config.metrics_port, "metrics")
    if config.baseline is None:  # one line at start, not one per worker
        logging.getLogger("cvspec.serve").warning(
            "no drift baseline: no stats.json beside the model (stats.json, ../data/stats.json) "
            "and no --baseline; input drift is not measured and drift alerts cannot fire "
            "(DriftBaselineMissing says so)"
        )
    if config.workers > 1:
        _serve_workers(config)
        return
    from cvspec.serve.app import build_app

    app = build_app(config, files, own_process=True)
    if config.metrics_port is not None:
        _metrics_server(config, app.service.metrics.registry)
    _uvicorn(app, config)


def _serve_workers(config: ServeConfig) -> None:
    """N processes, each with its own batcher; metrics are shared through files."""
    from cvspec.serve.app import CONFIG_ENV
    from cvspec.serve.metrics import MULTIPROC_ENV, scrape_registry

    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = tempfile.mkdtemp(prefix="cvspec-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    os.environ[CONFIG_ENV] = config.to_json()
    try:
        if config.metrics_port is not None:
            _metrics_server(config, scrape_registry())
        _uvicorn("cvspec.serve.app:app_from_env", config, factory=True, workers=config.workers)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


def _metrics_server(config: ServeConfig, registry: Any) -> None:
    from prometheus_client import start_http_server

    assert config.metrics_port is not None
    start_http_server(config.metrics_port, addr=config.host, registry=registry)


def _uvicorn(app: Any, config: ServeConfig, **extra: Any) -> None:
    import importlib.util

    import uvicorn

    # httptools (the serve extra installs it): its parser, with one send() per response and a
    # deadline and a size limit on request heads (protocol.py)
    if importlib.util.find_spec("httptools") is not None:
        from cvspec.serve.protocol import PROTOCOL

        extra.setdefault("http", PROTOCOL)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        access_log=False,  # the metrics count every request; a log line each costs more
        log_level=os.environ.get("CVSPEC_LOG_LEVEL", "info").lower(),
        timeout_keep_alive=KEEP_ALIVE_S,  # also the deadline for a request head (protocol.py)
        # No limit_concurrency: uvicorn counts open connections against it, idle ones included,
        # and past it answers a plain-text 503 without Retry-After before the app sees the
        # request, so a few hundred idle sockets took /health down and no metric counted it.
        # Admission is the app's, counted and with Retry-After (app.py): /predict requests in
        # flight (ServeConfig.request_capacity, which bounds the bodies held: each at most
        # max_body_bytes), the pixels being decoded (ServeConfig.decode_budget, which bounds
        # the decoded images: admission.py) and the batch queue. Connections that never
        # complete a request head are closed after KEEP_ALIVE_S (protocol.py).
        limit_concurrency=None,
        **extra,
    )
