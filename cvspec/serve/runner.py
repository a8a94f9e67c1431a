"""Start the server: uvicorn on the API port, Prometheus on the metrics port, 1..N workers."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from cvspec.errors import CvspecError
from cvspec.serve import logs
from cvspec.serve.config import ServeConfig
from cvspec.serve.model import read_model_dir

KEEP_ALIVE_S = 5
# On SIGTERM the server stops accepting, answers what it has admitted (bodies being read, the
# batch queue, the model call), then exits; past DRAIN_S the requests left are cancelled. Under
# `docker stop`'s and compose's default grace of 10 s, before the SIGKILL that follows it.
DRAIN_S = 8
DRAIN_ENV = "CVSPEC_DRAIN_S"  # another deadline, in whole seconds (Kubernetes' default grace: 30 s)


def drain_seconds() -> int:
    """The drain deadline: CVSPEC_DRAIN_S, else DRAIN_S."""
    text = os.environ.get(DRAIN_ENV, str(DRAIN_S))
    if not text.strip().isdigit():
        raise CvspecError(f"{DRAIN_ENV}={text!r}: a whole number of seconds")
    return int(text)


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
    logs.configure()  # a bad CVSPEC_LOG_LEVEL or CVSPEC_LOG_FORMAT fails here
    drain_seconds()  # a bad value fails now, not once the model is read and the ports taken
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
    # the API port has no /metrics then: say where it is (once, before any worker starts)
    host = f"[{config.host}]" if ":" in config.host else config.host
    logging.getLogger("cvspec.serve").info(
        "Prometheus metrics on http://%s:%d/metrics (--metrics-port 0: on the API port)",
        host,
        config.metrics_port,
    )


def _uvicorn(app: Any, config: ServeConfig, **extra: Any) -> None:
    import importlib.util

    import uvicorn

    # httptools (the serve extra installs it): its parser, with one send() per response and a
    # deadline and a size limit on request heads (protocol.py)
    if importlib.util.find_spec("httptools") is not None:
        from cvspec.serve.protocol import PROTOCOL

        extra.setdefault("http", PROTOCOL)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        access_log=False,  # the metrics count every request; a log line each costs more
        server_header=False,  # no `server: uvicorn` banner telling clients what to probe
        log_level=logs.level(),
        log_config=logs.uvicorn_config(),  # JSON lines from uvicorn too with CVSPEC_LOG_FORMAT
        timeout_keep_alive=KEEP_ALIVE_S,  # also the deadline for a request head (protocol.py)
        timeout_graceful_shutdown=drain_seconds(),
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
    try:
        if settings.workers > 1:
            _supervise(settings)
            return
        server = uvicorn.Server(settings)
        # uvicorn raises the SIGTERM it drained for again once done, which would kill the
        # process by the signal (exit status 143 in a container: "Error"); a drained server
        # exits 0 instead. A SIGTERM before uvicorn handles signals exits 0 as well.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        server.run()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn raises the SIGINT it handled again
        return
    if not server.started:
        sys.exit(uvicorn.config.STARTUP_FAILURE)


def _exit_cleanly(signum: int, frame: Any) -> None:
    sys.exit(0)


def _supervise(settings: Any) -> None:
    """uvicorn's worker supervisor, which also closes its own copy of the listening socket when
    it stops the workers: open, the kernel kept accepting connections that no draining worker
    took, and they hung until the parent exited instead of being refused."""
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def terminate_all(self) -> None:
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

    Supervisor(settings, sockets=[settings.bind_socket()]).run()
