"""The export stage: ONNX (TorchScript when asked), parity-checked, labels and preprocessing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.atomic import staged
from cvspec.preprocess import Preprocess
from cvspec.train.runs import finished, read_json, write_json

if TYPE_CHECKING:
    from cvspec.run.context import RunContext, StageResult

PARITY_TOLERANCE = 1e-4
INFO = "export.json"
MODEL = "model.onnx"  # what serving loads and evaluation measures, whatever else is exported


def run(ctx: RunContext) -> StageResult:
    """`cvspec run SPEC --stage export`: export the current run's best weights for serving."""
    from cvspec.run.context import StageResult

    fresh = is_fresh(ctx)
    info = read_json(ctx.runs / "export" / INFO) if fresh else export(ctx)
    baseline = ship_baseline(ctx, ctx.runs / "export")
    worst = max(info["parity"].values(), default=0.0)
    if info["task"] == "classification" and worst > PARITY_TOLERANCE:
        return StageResult(
            False,
            f"exported model differs from torch by {worst:.2e} "
            f"(> {PARITY_TOLERANCE:g}): {info['files']}",
        )
    parity = ", ".join(f"{k} max |diff| {v:.1e}" for k, v in info["parity"].items())
    state = "up to date" if fresh else "exported"
    message = f"{state}: {', '.join(info['files'])} from run {info['run_id']} ({parity})"
    return StageResult(True, f"{message}; {baseline}" if baseline else message)


def export(ctx: RunContext) -> dict[str, Any]:
    """Write runs/<p>/export/: model.onnx, labels.json, preprocess.json, export.json."""
    run = finished(ctx.runs / "train")
    status = read_json(run.status)
    out = ctx.stage_dir("export")
    weights = run.path / str(status["checkpoint"])
    images = sample_images(ctx, 8)
    if status["task"] == "detection":
        from cvspec.evaluate.export_detect import export_detector

        formats = list(ctx.spec.export)
        info = export_detector(weights, int(status["image_size"]), formats, images, out)
        pre = detection_preprocess(int(status["image_size"]))
    else:
        info = export_classifier(weights, list(ctx.spec.export), images, out)
        pre = Preprocess.from_json(info.pop("preprocess"))
    write_json(out / "labels.json", list(status["classes"]))
    write_json(out / "preprocess.json", pre.to_json())
    info |= {
        "task": status["task"],
        "run_id": run.run_id,
        "checkpoint_sha256": sha256(weights),
        "model_sha256": sha256(out / MODEL),  # what an evaluation names as the model it measured
        "formats": sorted(ctx.spec.export),
    }
    write_json(out / INFO, info)
    return info


def unevaluated_export(root: Path, project: str) -> str | None:
    """Why runs/<p>/evaluate/ measured another model.onnx than runs/<p>/export/ holds now (the
    same run exported again: other export settings, another cvspec), or None when it is that
    file, or when either side predates these digests (then the run ids are all there is)."""
    import json

    runs = root / "runs" / project
    try:
        exported = json.loads((runs / "export" / INFO).read_bytes()).get("model_sha256")
        evaluated = json.loads((runs / "evaluate/provenance.json").read_bytes()).get("model_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(exported, str) or not isinstance(evaluated, str) or exported == evaluated:
        return None
    return (
        f"runs/{project}/evaluate/ measured another {MODEL} than runs/{project}/export/ holds "
        f"now (exported again since: sha256 {evaluated[:12]} then, {exported[:12]} now)"
    )


def ship_baseline(ctx: RunContext, out: Path) -> str:
    """Copy the data stage's drift baseline beside the model (the serve image copies export/),
    when it describes the images the current run trained on; otherwise ship none, and say why.

    `cvspec run --stage train --stage export` after the data changed trains on the new images
    while runs/<p>/data/stats.json still describes the old ones: drift measured against that
    would be against data the model never saw."""
    source, shipped = ctx.runs / "data" / "stats.json", out / "stats.json"
    want = source.read_bytes() if source.is_file() else None
    trained_on = read_json(finished(ctx.runs / "train").status).get("train_images")
    note = ""
    if want is not None and trained_on is not None:  # runs from before keep the old rule
        import json

        from cvspec.spec.load import display_path

        described = json.loads(want).get("train_images")
        if described != trained_on:
            note = (
                f"no drift baseline shipped: {display_path(source)} describes other training "
                "images than "
                "the run's (run the data stage, then export again)"
            )
            want = None
    if want is None:
        shipped.unlink(missing_ok=True)
    elif not shipped.is_file() or shipped.read_bytes() != want:
        from cvspec.atomic import write_bytes

        write_bytes(shipped, want)
    return note


def is_fresh(ctx: RunContext) -> bool:
    """True when runs/<p>/export holds the spec's formats of the current run's weights."""
    path = ctx.runs / "export" / INFO
    if not path.is_file() or not (ctx.runs / "export" / "model.onnx").is_file():
        return False
    info = read_json(path)
    run = finished(ctx.runs / "train")
    weights = run.path / str(read_json(run.status)["checkpoint"])
    return bool(
        info.get("run_id") == run.run_id
        and info.get("formats") == sorted(ctx.spec.export)
        and info.get("checkpoint_sha256") == sha256(weights)
    )


def detection_preprocess(image_size: int) -> Preprocess:
    """ultralytics' input: RGB scaled to [0, 1], no mean/std normalisation."""
    return Preprocess(image_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), fit="letterbox")


def export_classifier(
    weights: Path, formats: list[str], images: list[Any], out: Path
) -> dict[str, Any]:
    """ONNX (dynamic batch) and optional TorchScript; max |diff| against torch on a batch."""
    import numpy as np
    import torch

    from cvspec.preprocess import to_array
    from cvspec.train.checkpoint import load
    from cvspec.train.model import from_checkpoint

    ckpt = load(weights)
    meta = ckpt["meta"]
    model = from_checkpoint(meta, ckpt["model"])
    pre = Preprocess.from_json(meta["preprocess"])
    batch = (
        torch.from_numpy(to_array(images, pre))
        if images
        else torch.randn(
            4, 3, pre.image_size, pre.image_size, generator=torch.Generator().manual_seed(0)
        )
    )
    with torch.inference_mode():
        reference = model(batch).numpy()
    exporter = onnx_export(model, batch, out / "model.onnx")
    parity = {
        "onnx": float(np.abs(onnx_logits(out / "model.onnx", batch.numpy()) - reference).max())
    }
    files = ["model.onnx"]
    if "torchscript" in formats:
        jit: Any = torch.jit  # untyped in torch
        traced = jit.trace(model, batch[:1])
        with staged(out / "model.ts") as tmp:
            traced.save(str(tmp))
        with torch.inference_mode():
            scripted = jit.load(str(out / "model.ts"))(batch).numpy()
        parity["torchscript"] = float(np.abs(scripted - reference).max())
        files.append("model.ts")
    return {
        "files": files,
        "parity": parity,
        "exporter": exporter,
        "preprocess": meta["preprocess"],
    }


def onnx_export(model: Any, batch: Any, path: Path) -> str:
    """torch.onnx.export with a dynamic batch axis (dynamo exporter, TorchScript as fallback)."""
    import torch

    with staged(path) as tmp:
        try:
            batch_dim = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                model,
                (batch,),
                str(tmp),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: batch_dim},),
                verbose=False,
                external_data=False,
            )
            exporter = "dynamo"
        except Exception:  # the dynamo exporter cannot trace every timm model; the old one can
            torch.onnx.export(
                model,
                (batch,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
            exporter = "torchscript"
    return exporter


def onnx_logits(path: Path, batch: Any) -> Any:
    """Run an exported model on a preprocessed batch with onnxruntime (CPU)."""
    from cvspec.evaluate.latency import session as open_session

    session = open_session(path)
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def sample_images(ctx: RunContext, count: int) -> list[Any]:
    """A few images of the evaluation split (PIL, RGB) for parity checks."""
    from cvspec.data.decode import decode
    from cvspec.data.index import build_index

    index = build_index(ctx.spec, ctx.data_root)
    records = [r for r in index.split(ctx.spec.eval_split) if r.mode][:count]
    return [decode(index.root, r) for r in records]


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
