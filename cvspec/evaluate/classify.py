"""Evaluate a classifier: the exported ONNX model on the evaluation split, through the server's
preprocessing, with per-class metrics and a confusion matrix (JSON and PNG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cvspec.atomic import staged
from cvspec.errors import CvspecError
from cvspec.train.runs import read_json, write_json

BATCH = 64


def evaluate_classifier(ctx: Any, export_dir: Path, out: Path) -> dict[str, Any]:
    """Metrics of runs/<p>/export/model.onnx on the spec's evaluation split."""
    import numpy as np

    from cvspec.data.decode import decode
    from cvspec.data.index import build_index
    from cvspec.evaluate.latency import session
    from cvspec.evaluate.metrics import classification
    from cvspec.preprocess import Preprocess, to_array

    classes = [str(c) for c in read_json(export_dir / "labels.json")]
    pre = Preprocess.from_json(read_json(export_dir / "preprocess.json"))
    index = build_index(ctx.spec, ctx.data_root)
    if list(index.classes) != classes:
        raise CvspecError(
            f"the dataset's classes {list(index.classes)} are not the model's "
            f"{classes}: retrain (cvspec run SPEC --stage train)"
        )
    split = ctx.spec.eval_split
    records = [r for r in index.split(split) if r.mode and r.label is not None]
    if not records:
        raise CvspecError(f"the {split} split has no usable images to evaluate on")
    sess = session(export_dir / "model.onnx")
    name = sess.get_inputs()[0].name
    chunks = []
    for start in range(0, len(records), BATCH):
        imgs = [decode(index.root, r) for r in records[start : start + BATCH]]
        chunks.append(sess.run(None, {name: to_array(imgs, pre)})[0])
    from cvspec.evaluate.review import candidates, write_review

    logits = np.concatenate(chunks)
    labels = [int(r.label) for r in records if r.label is not None]
    result = classification(logits, labels, classes)
    review = candidates(logits, records, classes)
    data_path = os.path.relpath(ctx.data_root, ctx.root)
    write_review(out, review, data_path, split, int(result["misclassified"]))
    matrix = result.pop("confusion")
    write_json(
        out / "confusion.json",
        {"classes": classes, "matrix": matrix, "rows": "true class", "columns": "predicted class"},
    )
    draw_confusion(matrix, classes, out / "confusion.png")
    return {"split": split, **result}


def draw_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """The confusion matrix as a PNG heat map with counts (PIL only)."""
    from PIL import Image, ImageDraw

    from cvspec.data.report import draw_name

    n, cell, margin = len(classes), 28, 90
    img = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw = ImageDraw.Draw(img)
    peak = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            shade = int(255 - 200 * count / peak)
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255))
            draw.text((x + 3, y + 8), str(count), fill="black" if shade > 120 else "white")
    for k, name in enumerate(classes):
        draw_name(draw, (4, margin + k * cell + 8), name[:12])
        draw_name(draw, (margin + k * cell + 3, margin - 14), name[:4])
    draw.text((4, 4), "rows: true class, columns: predicted class", fill="black")
    with staged(path) as tmp:
        img.save(tmp, format="PNG")
