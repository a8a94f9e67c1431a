"""A small real ONNX classifier with fixed weights, for tests and benchmarks (needs `onnx`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvspec.preprocess import Preprocess


def write_demo_model(
    folder: Path, labels: Sequence[str], image_size: int = 16, conv_channels: int = 0
) -> Path:
    """Write model.onnx, labels.json, preprocess.json: mean colour -> class (channel c % 3).

    With conv_channels > 0, two 3x3 convolutions come first (same answer, real compute), so a
    benchmark can weigh batching on a model whose cost is not all call overhead.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n = len(labels)
    weight = np.zeros((3, n), dtype=np.float32)
    for c in range(n):
        weight[c % 3, c] = 4.0 + c // 3  # ties between classes of one channel go to the later
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.zeros(n, np.float32), "b"),
    ]
    nodes, feature = [], "images"
    if conv_channels:
        k = conv_channels
        identity = np.zeros((3, k, 3, 3), dtype=np.float32)
        for c in range(3):
            identity[c, c, 1, 1] = 1.0  # the second conv passes channels 0..2 through
        rng = np.random.default_rng(0)
        first = rng.normal(0, 0.01, (k, 3, 3, 3)).astype(np.float32)
        first[:3] = 0
        for c in range(3):
            first[c, c, 1, 1] = 1.0
        inits += [numpy_helper.from_array(first, "c1"), numpy_helper.from_array(identity, "c2")]
        nodes += [
            helper.make_node("Conv", ["images", "c1"], ["f1"], pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["f1", "c2"], ["f2"], pads=[1, 1, 1, 1]),
        ]
        feature = "f2"
    nodes += [
        helper.make_node("GlobalAveragePool", [feature], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cvspec-demo",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["N", 3, image_size, image_size]
            )
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n])],
        inits,
    )
    return _save(graph, folder, labels, image_size)


def write_demo_detector(folder: Path, labels: Sequence[str], image_size: int = 32) -> Path:
    """A YOLO-shaped ONNX detector, output (N, 4 + classes, 2): two fixed boxes per image.

    Anchor 0 is a box of class 0 centred in the image whose score is the mean red level; anchor
    1 is a box of the last class in the top-left corner whose score is the mean blue level.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n, s = len(labels), float(image_size)
    weight = np.zeros((3, (4 + n) * 2), dtype=np.float32)
    bias = np.zeros((4 + n) * 2, dtype=np.float32)
    bias[[0, 2, 4, 6]] = [s / 2, s / 2, s / 2, s / 2]  # cx, cy, w, h of anchor 0 (row-major)
    bias[[1, 3, 5, 7]] = [s / 8, s / 8, s / 4, s / 4]  # ... of anchor 1
    weight[0, 8 + 0] = 1.0  # row 4 (class 0), anchor 0 <- red
    weight[2, 8 + 2 * (n - 1) + 1] = 1.0  # row 4 + n - 1, anchor 1 <- blue
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["raw"]),
        helper.make_node("Reshape", ["raw", "shape"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(np.asarray([-1, 4 + n, 2], dtype=np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "cvspec-demo-detector",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["N", 3, image_size, image_size]
            )
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 4 + n, 2])],
        inits,
    )
    return _save(graph, folder, labels, image_size, fit="letterbox")  # as a detector's export


def _save(
    graph: Any, folder: Path, labels: Sequence[str], image_size: int, fit: str = "stretch"
) -> Path:
    """Check the graph and write the three files the server loads, as the export stage does."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    (folder / "labels.json").write_text(json.dumps(list(labels)), encoding="utf-8")
    pre = Preprocess(image_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), fit=fit)
    (folder / "preprocess.json").write_text(json.dumps(pre.to_json()), encoding="utf-8")
    return folder
