"""`cvspec serve`: serve an exported model over HTTP with Prometheus metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cvspec.cli.common import ProfileOpt, SetOpt, make_options
from cvspec.errors import UsageError


def command(
    spec: Annotated[
        Path | None,
        typer.Argument(
            help="The spec: serves runs/PROJECT/export with its 'serve:' settings.",
            show_default=False,
            metavar="SPEC",
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir",
            envvar="CVSPEC_MODEL_DIR",
            show_default=False,
            help="An export folder (model.onnx, labels.json, preprocess.json); without a spec, "
            "the settings are the spec defaults.",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            envvar="CVSPEC_BASELINE",
            show_default=False,
            help="The data stage's stats.json for the drift gauges; default: next to the model "
            "or runs/PROJECT/data/stats.json.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            envvar="CVSPEC_HOST",
            help="Address to listen on (default: 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help="API port (default: serve.port).", show_default=False
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            show_default=False,
            help="Prometheus port; 0: /metrics on the API port only (default: serve.metrics_port).",
        ),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(
            "--max-batch",
            min=1,
            max=1024,
            help="Largest dynamic batch; 1: no batching.",
            show_default=False,
        ),
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(
            "--max-wait-ms",
            min=0,
            max=10_000,
            help="Longest wait to fill a batch, in ms.",
            show_default=False,
        ),
    ] = None,
    queue_size: Annotated[
        int | None,
        typer.Option(
            "--queue-size",
            min=1,
            help="Images that may wait; more -> 503 (default: 8 batches, at least 64).",
            show_default=False,
        ),
    ] = None,
    max_image_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-image-bytes",
            min=1,
            help="Largest request body, in bytes (default: serve.max_image_bytes).",
            show_default=False,
        ),
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            min=1,
            help="Largest decoded image, width x height (default: serve.max_pixels).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=0,
            help="onnxruntime intra-op threads per worker; 0: one per core, shared by the workers.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="cpu or cuda: where onnxruntime runs the model (default: serve.device, else cpu).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=256, help="Server processes.", show_default=False),
    ] = None,
    box_confidence: Annotated[
        float | None,
        typer.Option(
            "--box-confidence",
            min=0.0,
            max=1.0,
            help="Detection: least confidence of an answered box (default: serve.box_confidence).",
            show_default=False,
        ),
    ] = None,
    box_iou: Annotated[
        float | None,
        typer.Option(
            "--box-iou",
            min=0.0,
            max=1.0,
            help="Detection: overlap past which a weaker box is dropped (default: serve.box_iou).",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve a model: POST /predict, GET /health; GET /metrics on the metrics port.

    The serve image's entrypoint.
    """
    from cvspec.serve.config import ServeConfig, from_spec, override
    from cvspec.serve.runner import serve

    if spec is None and model_dir is None:
        raise UsageError("give a spec file or --model-dir DIR")
    if device not in (None, "cpu", "cuda"):
        raise UsageError(f"--device {device!r}: cpu or cuda")
    if spec is not None:
        if not spec.is_file():
            raise UsageError(f"spec file not found: {spec}")
        from cvspec.project import find_root
        from cvspec.spec import load_spec

        options = make_options(profile, set_)
        loaded = load_spec(spec, options.profile, options.sets)
        runs = find_root(Path.cwd()) / "runs" / str(loaded.spec.project.name)
        config = from_spec(loaded.spec, runs)
    else:
        assert model_dir is not None
        config = ServeConfig(model_dir, _default_baseline(model_dir))
    config = override(
        config,
        model_dir=model_dir,
        baseline=baseline,
        host=host,
        port=port,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_size=queue_size,
        threads=threads,
        device=device,
        workers=workers,
        max_body_bytes=max_image_bytes,
        max_pixels=max_pixels,
        box_confidence=box_confidence,
        box_iou=box_iou,
    )
    if metrics_port is not None:
        config = replace(config, metrics_port=metrics_port or None)
    if config.metrics_port == config.port:
        raise UsageError(f"--metrics-port {config.port} is the API port too; pick another or 0")
    from cvspec.providers import providers

    providers(config.device, "serve.device")  # before any port is taken: the device is here
    serve(config)


def _default_baseline(model_dir: Path) -> Path | None:
    for candidate in (model_dir / "stats.json", model_dir.parent / "data" / "stats.json"):
        if candidate.is_file():
            return candidate
    return None
