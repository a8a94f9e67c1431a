"""Model outputs -> answers: top-k classes, or boxes after non-maximum suppression."""

from __future__ import annotations

from typing import Any

TOP_K = 5
BOX_CONF = 0.25  # detection: keep boxes at least this confident (default of serve.box_confidence)
BOX_IOU = 0.45  # detection: suppress boxes overlapping a better one more (serve.box_iou)
MAX_BOXES = 300  # ultralytics' max_det, in prediction and in the evaluate stage's validator


def classify(probs: Any, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """One answer per row of class probabilities: the label, its confidence, the top k.

    Ranks the whole batch in one call; confidences are Python floats rounded to 6 places.
    """
    import numpy as np

    k = min(TOP_K, len(labels))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(probs, order, axis=1).tolist()
    out = []
    for indices, confidences in zip(order.tolist(), values, strict=True):
        top = [
            {"label": labels[i], "confidence": round(c, 6)}
            for i, c in zip(indices, confidences, strict=True)
        ]
        out.append(
            {
                "label": top[0]["label"],
                "index": indices[0],
                "confidence": top[0]["confidence"],
                "top": top,
            }
        )
    return out


def detect(
    raw: Any,
    labels: tuple[str, ...],
    size: tuple[int, int],
    side: int,
    fit: str = "stretch",
    conf_floor: float = BOX_CONF,
    iou: float = BOX_IOU,
) -> dict[str, Any]:
    """Boxes of one image from a YOLO-style output (4 + classes, anchors), in image pixels:
    the model's square mapped back through the stretch or the letterbox that made it."""
    import numpy as np

    preds = np.asarray(raw, dtype=np.float32).T  # (anchors, 4 + classes)
    scores = preds[:, 4:]
    classes = scores.argmax(axis=1)
    conf = scores[np.arange(len(preds)), classes]
    keep = conf >= conf_floor
    preds, classes, conf = preds[keep], classes[keep], conf[keep]
    cx, cy, w, h = preds[:, 0], preds[:, 1], preds[:, 2], preds[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    chosen = _nms(boxes + classes[:, None] * 4 * side, conf, iou)[:MAX_BOXES]  # offset: per class
    if fit == "letterbox":
        from cvspec.preprocess import letterbox

        _, nw, nh, left, top = letterbox(size, side)
        sx, sy = nw / size[0], nh / size[1]  # each side's own scale (one was rounded up)
        image = (boxes - (left, top, left, top)) / (sx, sy, sx, sy)
        image = image.clip(0, (size[0], size[1], size[0], size[1]))
    else:
        image = boxes * (size[0] / side, size[1] / side, size[0] / side, size[1] / side)
    return {
        "boxes": [
            {
                "label": labels[int(classes[i])],
                "confidence": round(float(conf[i]), 6),
                "box": [round(float(v), 2) for v in image[i]],
            }
            for i in chosen
        ]
    }


def _nms(boxes: Any, scores: Any, iou_limit: float = BOX_IOU) -> list[int]:
    import numpy as np

    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    kept: list[int] = []
    while order:
        best, rest = order[0], np.asarray(order[1:], dtype=int)
        kept.append(int(best))
        if not len(rest):
            break
        lo = np.maximum(boxes[best, :2], boxes[rest, :2])
        hi = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = (hi - lo).clip(0).prod(axis=1)
        iou = inter / (area[best] + area[rest] - inter + 1e-9)
        order = list(rest[iou <= iou_limit])
    return kept
