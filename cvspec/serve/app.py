"""The HTTP API on Starlette: POST /predict, GET /health, GET /metrics (without a metrics port)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from cvspec.serve import metric_names as m
from cvspec.serve.admission import held_until_done
from cvspec.serve.batching import BatchFailed, QueueFull
from cvspec.serve.config import ServeConfig
from cvspec.serve.inputs import InputError, guard_pixels, open_header, read_images
from cvspec.serve.model import ModelFiles, read_model_dir
from cvspec.serve.service import Service

CONFIG_ENV = "CVSPEC_SERVE_CONFIG"  # worker processes read their ServeConfig (JSON) from here
RETRY_AFTER_S = 1
CLIENT_CLOSED = 499  # nginx's "client closed request": the client left mid-upload; not a 5xx
INLINE_PIXELS = 128 * 128  # images up to this size are decoded on the event loop itself
# What a client learns of a model that failed to load: the reason (onnxruntime's message, with
# the model's path on the server) is for the operator, in the server's log.
LOAD_FAILED = "the model failed to load; the server's log says why"
log = logging.getLogger("cvspec.serve")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def error(status: int, code: str, message: str, retry: bool = False) -> Any:
    """A JSON error answer: {"error": {"code", "message"}}; 503s carry Retry-After."""
    from starlette.responses import JSONResponse

    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers)


def model_failed(reference: str) -> str:
    """What a client is told of a failed prediction: where the reason is, not the reason."""
    return (
        "the model failed on this request's batch; "
        f"the server's log has the reason (reference {reference})"
    )


async def predict(request: Any) -> Any:
    """POST /predict: one raw image, or several as multipart/form-data files."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response

    service: Service = request.app.state.service
    if not service.ready or service.batcher is None:
        message = LOAD_FAILED if service.error else "the model is loading"
        return error(503, "not_ready", message, retry=True)
    config = service.config
    if service.in_flight >= config.request_capacity:  # before reading: bounds the bodies held
        message = f"{service.in_flight} requests in flight (limit {config.request_capacity})"
        return error(503, "overloaded", message, retry=True)
    service.in_flight += 1
    received = None  # when the body was in: the server's own part of the request starts there
    try:
        service.pending += 1
        try:
            blobs = await read_images(request, config.max_body_bytes, config.queue_capacity)
            received = time.perf_counter()
            images = [open_header(data, index) for index, data in enumerate(blobs)]
            pixels = max(img.width * img.height for img in images)
            if pixels <= INLINE_PIXELS:
                inputs = service.prepare(images)  # well under a millisecond: no thread hop
            else:
                decode = partial(run_in_threadpool, service.prepare, images)
                inputs = await held_until_done(service.decoding, pixels, decode)  # QueueFull: 503
        finally:
            service.pending -= 1
        del blobs, images  # only the model inputs wait for the batch, not the uploaded bytes
        answers = await service.batcher.submit([p.array for p in inputs], inputs)
    except InputError as exc:
        return error(exc.status, exc.code, exc.message)
    except QueueFull as exc:
        return error(503, "overloaded", str(exc), retry=True)
    except asyncio.CancelledError:  # the drain deadline passed (runner.DRAIN_S): another replica
        return error(503, "shutting_down", "the server is shutting down", retry=True)
    except ClientDisconnect:  # nobody reads this answer; it is sent for the metrics' status
        log.debug("the client closed the connection before its upload ended")
        return Response(status_code=CLIENT_CLOSED)
    except BatchFailed as exc:  # the model failed: a JSON 500, counted like any other
        # The reason (onnxruntime's text: node names, shapes, the server's paths) is for the
        # operator: the batcher logged it once per batch, under the reference the client gets.
        return error(500, "model_error", model_failed(exc.reference))
    except Exception:  # anything else on the way: logged here, under its own reference
        reference = uuid.uuid4().hex[:12]
        log.exception("prediction failed (reference %s)", reference)
        return error(500, "model_error", model_failed(reference))
    finally:
        service.in_flight -= 1
        if received is not None:  # answered (any status) after the whole body arrived
            service.metrics.served(time.perf_counter() - received)
    model = {"name": service.name, "version": service.files.version}
    return JSONResponse({"model": model, "predictions": answers})


async def health(request: Any) -> Any:
    """GET /health: 200 once the model is loaded and warm, else 503 (loading or failed)."""
    from starlette.responses import JSONResponse

    service: Service = request.app.state.service
    if service.ready:
        return JSONResponse(
            {"status": "ok", "model": service.name, "version": service.files.version}
        )
    if service.error:
        return JSONResponse({"status": "failed", "error": LOAD_FAILED}, 503)
    return JSONResponse({"status": "loading", "error": None}, 503)


async def metrics(request: Any) -> Any:
    """GET /metrics: Prometheus' text format."""
    from starlette.responses import Response

    body, content_type = request.app.state.service.metrics.exposition()
    return Response(body, headers={"Content-Type": content_type})


def build_app(
    config: ServeConfig, files: ModelFiles | None = None, own_process: bool = False
) -> TimedApp:
    """The ASGI app; the model loads in the background once the server starts. `own_process`:
    the app is all its process serves (cvspec serve), so what lives at start can be frozen
    out of garbage collection."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    guard_pixels(config.max_pixels)
    service = Service(config, files or read_model_dir(config.model_dir), own_process)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loading = asyncio.create_task(service.start())  # /health answers 503 meanwhile
        try:
            yield
        finally:
            loading.cancel()
            await service.stop()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            if service.calling:  # a model call outlived the drain deadline
                # Its thread would hold the process up at exit (Python joins it) until a SIGKILL
                log.error("a model call is still running after the drain deadline; exiting")
                await asyncio.sleep(0.1)  # the 503s of the cancelled requests leave first
                logging.shutdown()
                os._exit(1)

    routes = [Route(m.PREDICT_ROUTE, predict, methods=["POST"]), Route("/health", health)]
    # /metrics on the API port only when there is no metrics port: the API port is the one
    # published to the network (docker-compose.monitoring.yml keeps the metrics port inside),
    # and its requests, classes and drift are for Prometheus, not for every client.
    if config.metrics_port is None:
        routes.append(Route("/metrics", metrics))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    if own_process:  # the only app of its process: the HTTP protocol counts into its metrics
        from cvspec.serve import metrics as shared

        shared.count_closed = service.metrics.connection_closed
    return TimedApp(app, service)


def app_from_env() -> TimedApp:
    """The app of one worker process (uvicorn --factory), configured through CVSPEC_SERVE_CONFIG."""
    from cvspec.serve import logs

    logs.configure()  # a fresh process: without it, cvspec.serve's lines under WARNING were lost
    return build_app(ServeConfig.from_json(os.environ[CONFIG_ENV]), own_process=True)


class TimedApp:
    """ASGI wrapper that counts every HTTP request by route and status and times it, from the
    start of the request (its upload included: the client's view) to the end of the answer."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["method"] == "POST" and scope["path"] == m.PREDICT_ROUTE:
                await self._predict(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            route = path if path in m.ROUTES else m.OTHER_ROUTE
            self.service.metrics.request(route, status, time.perf_counter() - started)

    async def _predict(self, scope: Scope, receive: Any, send: Any) -> None:
        """POST /predict straight to its endpoint, past Starlette's middleware and router: they
        cost about a tenth of the server's time per request (benchmarks/README.md), and
        `predict` answers every error itself. Other methods on /predict get Starlette's 405."""
        from starlette.requests import Request

        scope["app"] = self.app  # what Starlette sets for `request.app`
        response = await predict(Request(scope, receive))
        await response(scope, receive, send)
