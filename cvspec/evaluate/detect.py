"""Evaluate a detector with ultralytics' validator: mAP50 and mAP50-95 overall and per class."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_detector(
    ctx: Any, run_path: Path, weights: Path, image_size: int, out: Path
) -> dict[str, Any]:
    """Box metrics of a model file (the exported ONNX, or ultralytics weights) on the spec's
    evaluation split, through ultralytics' validator."""
    from cvspec.train.ultra import dataset_errors, dataset_untouched, yolo

    spec = ctx.spec
    split = spec.eval_split
    model = yolo(str(weights), task="detect")
    seen: list[int] = []  # the validator's count of evaluated images, when it ends
    model.add_callback("on_val_end", lambda validator: seen.append(int(validator.seen)))
    # its label cache stays out of the dataset
    with dataset_untouched(ctx.data_root), dataset_errors("evaluation"):
        result = model.val(
            data=str(run_path / "data.yaml"),
            split=split,
            imgsz=image_size,
            # square letterboxed inputs, as the server makes them (preprocess.resized): with a
            # dynamic-shape ONNX model ultralytics would otherwise batch images by aspect ratio
            # into rectangles, and the mAP would be of inputs the server never sends
            rect=False,
            batch=16,
            conf=spec.evaluate.conf,
            iou=spec.evaluate.iou,
            plots=False,
            project=str(out),
            name="val",
            exist_ok=True,
            verbose=False,
            workers=0,
        )
    box = result.box
    names = result.names
    per_class = {}
    for i, cls in enumerate(box.ap_class_index):
        per_class[str(names[int(cls)])] = {
            "ap50": float(box.ap50[i]),
            "ap50_95": float(box.ap[i]),
            "precision": float(box.p[i]),
            "recall": float(box.r[i]),
        }
    # classes with no box in the split have no AP: they are in no per-class row, nor in
    # min_class_ap50, and the card names them
    unevaluated = [str(names[i]) for i in sorted(names) if str(names[i]) not in per_class]
    return {
        "split": split,
        "map50": float(box.map50),
        "map50_95": float(box.map),
        "precision": float(box.mp),
        "recall": float(box.mr),
        "min_class_ap50": min((c["ap50"] for c in per_class.values()), default=0.0),
        "images": seen[-1] if seen else 0,
        "boxes": int(result.nt_per_class.sum()) if result.nt_per_class is not None else 0,
        "per_class": per_class,
        "classes_without_boxes": unevaluated,
    }
