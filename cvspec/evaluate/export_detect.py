"""Detector export through ultralytics (ONNX with a dynamic batch, TorchScript when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_detector(
    weights: Path, image_size: int, formats: list[str], images: list[Any], out: Path
) -> dict[str, Any]:
    """model.onnx (and model.ts) from an ultralytics checkpoint; max |diff| of the ONNX raw
    outputs against torch, reported (NMS happens after it, so a tolerance means little)."""
    import numpy as np
    import torch

    from cvspec.evaluate.export import detection_preprocess, onnx_logits
    from cvspec.preprocess import to_array
    from cvspec.train.ultra import yolo

    produced = Path(
        yolo(str(weights)).export(
            format="onnx", imgsz=image_size, dynamic=True, simplify=True, verbose=False
        )
    )
    produced.replace(out / "model.onnx")
    files = ["model.onnx"]
    if "torchscript" in formats:
        traced = yolo(str(weights)).export(format="torchscript", imgsz=image_size, verbose=False)
        Path(traced).replace(out / "model.ts")
        files.append("model.ts")
    pre = detection_preprocess(image_size)
    batch = (
        to_array(images, pre)
        if images
        else np.zeros((2, 3, image_size, image_size), dtype=np.float32)
    )
    model = yolo(str(weights)).model.float().eval()
    with torch.inference_mode():
        raw = model(torch.from_numpy(batch))
    reference = (raw[0] if isinstance(raw, (tuple, list)) else raw).numpy()
    diff = float(np.abs(onnx_logits(out / "model.onnx", batch) - reference).max())
    return {"files": files, "parity": {"onnx": diff}, "exporter": "ultralytics"}
