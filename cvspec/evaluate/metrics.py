"""Classification metrics from labels and scores: accuracy, per-class P/R/F1, confusion, ECE."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any


def softmax(logits: Any) -> Any:
    """Row-wise softmax of a (N, C) array, computed stably in float64."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion(labels: Any, predicted: Any, classes: int) -> Any:
    """(C, C) counts: row = true class, column = predicted class."""
    import numpy as np

    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(
        matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1
    )
    return matrix


def ece(probs: Any, labels: Any, bins: int = 15) -> float:
    """Expected calibration error: |accuracy - confidence| per confidence bin, weighted."""
    import numpy as np

    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (conf > low) & (conf <= high)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def classification(logits: Any, labels: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Every classification metric cvspec reports (and can gate on) for one split."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    n = len(classes)
    matrix = confusion(y, predicted, n)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    called = matrix.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, called, out=np.zeros(n), where=called > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0
    )
    present = support > 0
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "images": len(y),
        "misclassified": int((predicted != y).sum()),
        "accuracy": float((predicted == y).mean()) if len(y) else 0.0,
        "top5_accuracy": float((top5 == y[:, None]).any(axis=1).mean()) if len(y) else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "min_class_recall": float(recall[present].min()) if present.any() else 0.0,
        "ece": ece(probs, y) if len(y) else 0.0,
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def wilson(rate: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion `rate` measured on `n`
    items: where the true proportion lies, given how few items measured it."""
    import math

    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)
