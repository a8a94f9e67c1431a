"""The `evaluate` section: quality gates per task and the latency benchmark."""

from typing import Any, Literal, NamedTuple

from pydantic import Field

from cvspec.spec.model_base import Gate, Probability, StrictModel


class GateInfo(NamedTuple):
    """What a gate measures and which bound it naturally takes."""

    direction: Literal["min", "max"]
    fraction: bool
    unit: str
    description: str


GATE_INFO: dict[str, GateInfo] = {
    "accuracy": GateInfo("min", True, "", "Top-1 accuracy on the evaluation split"),
    "top5_accuracy": GateInfo("min", True, "", "Top-5 accuracy on the evaluation split"),
    "balanced_accuracy": GateInfo("min", True, "", "Mean of the per-class recalls"),
    "macro_f1": GateInfo("min", True, "", "Unweighted mean of the per-class F1 scores"),
    "min_class_recall": GateInfo("min", True, "", "Recall of the worst class"),
    "ece": GateInfo("max", True, "", "Expected calibration error (15 bins)"),
    "map50": GateInfo("min", True, "", "Mean average precision at IoU 0.5"),
    "map50_95": GateInfo("min", True, "", "Mean average precision over IoU 0.5:0.95"),
    # ultralytics' P and R: each class's at IoU 0.5 and at the one confidence where the mean F1
    # over classes peaks, then averaged (neither evaluate.conf nor serve.box_confidence)
    "precision": GateInfo(
        "min", True, "", "Mean box precision over classes, at IoU 0.5 and the best-F1 confidence"
    ),
    "recall": GateInfo(
        "min", True, "", "Mean box recall over classes, at IoU 0.5 and the best-F1 confidence"
    ),
    "min_class_ap50": GateInfo("min", True, "", "AP at IoU 0.5 of the worst class"),
    "latency_p50_ms": GateInfo("max", False, "ms", "Median latency of one batch"),
    "latency_p95_ms": GateInfo("max", False, "ms", "95th percentile latency of one batch"),
    "throughput_ips": GateInfo("min", False, "images/s", "Inference throughput"),
    "model_size_mb": GateInfo("max", False, "MB", "Size of the largest exported model file"),
}


def _gate(name: str) -> Any:
    info = GATE_INFO[name]
    better = "higher" if info.direction == "min" else "lower"
    unit = f", in {info.unit}" if info.unit else ", in [0, 1]"
    return Field(None, description=f"{info.description}{unit}; {better} is better.")


class ClassificationGates(StrictModel):
    """Quality gates of a classifier; each becomes a test, a CI gate, an alert and a chart line."""

    accuracy: Gate | None = _gate("accuracy")
    top5_accuracy: Gate | None = _gate("top5_accuracy")
    balanced_accuracy: Gate | None = _gate("balanced_accuracy")
    macro_f1: Gate | None = _gate("macro_f1")
    min_class_recall: Gate | None = _gate("min_class_recall")
    ece: Gate | None = _gate("ece")
    latency_p50_ms: Gate | None = _gate("latency_p50_ms")
    latency_p95_ms: Gate | None = _gate("latency_p95_ms")
    throughput_ips: Gate | None = _gate("throughput_ips")
    model_size_mb: Gate | None = _gate("model_size_mb")


class DetectionGates(StrictModel):
    """Quality gates of a detector; each becomes a test, a CI gate, an alert and a chart line."""

    map50: Gate | None = _gate("map50")
    map50_95: Gate | None = _gate("map50_95")
    precision: Gate | None = _gate("precision")
    recall: Gate | None = _gate("recall")
    min_class_ap50: Gate | None = _gate("min_class_ap50")
    latency_p50_ms: Gate | None = _gate("latency_p50_ms")
    latency_p95_ms: Gate | None = _gate("latency_p95_ms")
    throughput_ips: Gate | None = _gate("throughput_ips")
    model_size_mb: Gate | None = _gate("model_size_mb")


GATES: dict[str, dict[str, str]] = {
    task: {name: GATE_INFO[name].direction for name in model.model_fields}
    for task, model in (("classification", ClassificationGates), ("detection", DetectionGates))
}


def set_gates(gates: StrictModel) -> dict[str, Gate]:
    """The gates a spec sets, by name, in declaration order."""
    return {name: g for name, g in gates if isinstance(g, Gate)}


class LatencyBench(StrictModel):
    """How latency and throughput are measured."""

    batch: int = Field(1, ge=1, le=4096, description="Images per timed call.")
    warmup: int = Field(10, ge=0, description="Untimed calls before measuring.")
    iterations: int = Field(100, ge=1, description="Timed calls.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Device the benchmark runs on.")
    threads: int | None = Field(None, ge=1, description="CPU threads; null: the runtime default.")


class EvaluateBase(StrictModel):
    """How the trained model is evaluated and which gates it must pass."""

    split: Literal["val", "test"] | None = Field(
        None, description="Split to evaluate on; null: test if the data has one, else val."
    )
    latency: LatencyBench = Field(default_factory=LatencyBench, description="Latency benchmark.")
    gates: StrictModel = Field(default_factory=StrictModel, description="Quality gates.")


class ClassificationEvaluate(EvaluateBase):
    """Evaluation of a classifier."""

    gates: ClassificationGates = Field(
        default_factory=ClassificationGates, description="Quality gates: metric -> {min, max}."
    )


class DetectionEvaluate(EvaluateBase):
    """Evaluation of a detector."""

    gates: DetectionGates = Field(
        default_factory=DetectionGates, description="Quality gates: metric -> {min, max}."
    )
    conf: Probability = Field(0.001, description="Confidence threshold for mAP evaluation.")
    iou: Probability = Field(0.6, description="IoU threshold of non-maximum suppression.")
