"""Evaluation: exact metrics, gate verdicts, and a failing gate failing the stage and the tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import Result, cvspec
from test_train import TINY_SPEC, tiny_project

from cvspec.evaluate.gates import GateResult
from cvspec.evaluate.metrics import classification, confusion, ece

GATED_SPEC = (
    TINY_SPEC.replace("epochs: 2", "epochs: 1")
    + """\
evaluate:
  gates:
    accuracy: {min: 0.3}
    latency_p50_ms: {max: 0.0001}
"""
)


def test_classification_metrics_are_exact() -> None:
    # 3 classes; true labels and the class each row's logits pick
    labels = [0, 0, 0, 1, 1, 2]
    picks = [0, 0, 1, 1, 1, 0]
    logits = [[5.0 if c == p else 0.0 for c in range(3)] for p in picks]
    m = classification(logits, labels, ["a", "b", "c"])
    assert m["images"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class"]["a"] == {
        "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3), "support": 3,
    }  # fmt: skip
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert m["min_class_recall"] == 0.0
    assert m["top5_accuracy"] == 1.0  # three classes: the true one is always in the top 5
    confident = math.exp(5) / (math.exp(5) + 2)
    assert m["ece"] == pytest.approx(abs(4 / 6 - confident))


def test_confusion_and_ece_edge_cases() -> None:
    assert confusion([1, 1], [0, 1], 2).tolist() == [[0, 0], [1, 1]]
    import numpy as np

    perfect = np.asarray([[1.0, 0.0], [0.0, 1.0]])
    assert ece(perfect, [0, 1]) == 0.0


def test_label_review_lists_confident_mistakes_first() -> None:
    from types import SimpleNamespace

    from cvspec.evaluate.review import candidates

    records = [
        SimpleNamespace(path=f"{i}.png", label=label) for i, label in enumerate([0, 1, 1, 0])
    ]
    logits = [[4.0, 0.0], [3.0, 0.0], [0.0, 1.0], [1.0, 0.0]]  # 1.png: a confident mistake
    found = candidates(logits, records, ["cat", "dog"])
    assert [(c["path"], c["label"], c["predicted"]) for c in found] == [("1.png", "dog", "cat")]
    assert found[0]["confidence"] == round(math.exp(3) / (math.exp(3) + 1), 4)
    assert found[0]["label_probability"] == round(1 / (math.exp(3) + 1), 4)
    many = candidates(
        [[0.0, 2.0]] * 3 + [[0.0, 5.0]],
        [SimpleNamespace(path=f"{i}", label=0) for i in range(4)],
        ["a", "b"],
        limit=2,
    )
    assert [c["path"] for c in many] == ["3", "0"]  # most confident first, then by path


def test_gate_results_say_value_bound_and_source() -> None:
    low = GateResult("accuracy", 0.91234, 0.95, None, "specs/a.yaml:40")
    assert not low.passed
    assert low.message() == (
        "gate accuracy FAILED: measured 0.91234, required >= 0.95 (from specs/a.yaml:40)"
    )
    fast = GateResult("latency_p95_ms", 12.5, None, 20.0, "specs/a.yaml:41")
    assert fast.passed and fast.bound() == "<= 20"
    both = GateResult("ece", 0.5, 0.0, 0.1, "x")
    assert not both.passed and both.bound() == ">= 0 and <= 0.1"
    missing = GateResult("map50", None, 0.5, None, "x")
    assert not missing.passed and "measured not measured" not in missing.message()
    assert GateResult("accuracy", float("nan"), 0.5, None, "x").passed is False
    assert GateResult("accuracy", 0.95, 0.95, None, "x").passed  # bounds are inclusive


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A tiny project trained for one epoch whose latency gate cannot pass, then evaluated."""
    root = tiny_project(tmp_path_factory.mktemp("gated"), GATED_SPEC)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--stage", "evaluate", cwd=root, timeout=600
    )
    return root, result


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.slow
def test_a_failing_gate_fails_the_stage_with_its_message(gated: tuple[Path, Result]) -> None:
    root, result = gated
    assert result.code == 1, result.err
    line = _line_of(GATED_SPEC, "latency_p50_ms")
    report = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["accuracy"]["passed"] and not gates["latency_p50_ms"]["passed"]
    assert gates["latency_p50_ms"]["source"] == f"specs/tiny.yaml:{line}"
    measured = gates["latency_p50_ms"]["value"]
    assert (
        f"gate latency_p50_ms FAILED: measured {measured:.6g}, required <= 0.0001 "
        f"(from specs/tiny.yaml:{line})"
    ) in result.err
    assert "FAILED evaluate" in result.err
    assert report["passed"] is False and report["split"] == "test"
    metrics = report["metrics"]
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "min_class_recall", "ece",
                "latency_p50_ms", "latency_p95_ms", "throughput_ips", "model_size_mb"):  # fmt: skip
        assert isinstance(metrics[key], float), key
    assert sorted(report["per_class"]) == ["checks", "columns", "rows"]
    matrix = json.loads((root / "runs/tiny/evaluate/confusion.json").read_text())
    assert sum(map(sum, matrix["matrix"])) == metrics["images"]
    assert (root / "runs/tiny/evaluate/confusion.png").read_bytes()[:4] == b"\x89PNG"
    review = json.loads((root / "runs/tiny/evaluate/label_review.json").read_text())
    wrong = metrics["images"] - sum(matrix["matrix"][i][i] for i in range(3))
    assert len(review) == min(25, wrong)  # every mistake, up to the queue's length
    assert [r["confidence"] for r in review] == sorted(
        (r["confidence"] for r in review), reverse=True
    )
    assert all(
        r["label"] != r["predicted"] and (root / "data/tiny" / r["path"]).is_file() for r in review
    )
    md = (root / "runs/tiny/evaluate/label_review.md").read_text()
    assert md.startswith("# Label review\n") and all(f"`{r['path']}`" in md for r in review)


@pytest.mark.slow
def test_a_failing_gate_fails_the_generated_test(gated: tuple[Path, Result]) -> None:
    root, _ = gated
    stage = cvspec("run", "specs/tiny.yaml", "--stage", "test", cwd=root, timeout=300)
    assert stage.code == 1
    cases = ET.parse(root / "runs/tiny/test/junit.xml").getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["test_gate_latency_p50_ms"]  # the data tests of the tiny set pass
    env = {k: v for k, v in os.environ.items() if k != "CVSPEC_ROOT"}
    direct = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "generated/tiny/tests/test_model.py"],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert direct.returncode == 1
    report = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())
    measured = report["metrics"]["latency_p50_ms"]
    assert (
        f"AssertionError: gate latency_p50_ms FAILED: measured {measured:.6g}, required <= "
        "0.0001 (from specs/tiny.yaml: evaluate.gates.latency_p50_ms)"
    ) in direct.stdout
    assert "1 failed, 1 passed" in direct.stdout


@pytest.mark.slow
def test_the_model_card_reports_data_training_gates_and_limits(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    for heading in ("# Model card: tiny", "## Intended use", "## Data", "## Training",
                    "## Evaluation", "## Export", "## Limitations"):  # fmt: skip
        assert f"\n{heading}\n" in f"\n{card}", heading
    assert "- Model: `timm/resnet10t`, from scratch" in card
    assert "| latency_p50_ms |" in card and "| FAIL |" in card
    assert "Gates not met: latency_p50_ms: do not ship this model as is." in card
    assert "No data report: run the data stage" in card  # only train and evaluate ran
    assert "Label review: " in card


@pytest.mark.slow
def test_the_model_card_describes_the_evaluated_run_not_the_spec_as_it_reads_now(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    spec = root / "specs/tiny.yaml"
    text = spec.read_text()
    spec.write_text(
        text.replace("epochs: 1", "epochs: 7").replace("image_size: 16", "image_size: 64")
    )
    try:
        again = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
        assert again.code == 1, again.err  # the impossible latency gate, as before
        card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
        assert "- 1 epochs, batch 8, adamw (lr 0.01, weight decay 0)" in card
        assert "- Input: RGB images resized to 16 x 16 px" in card
    finally:
        spec.write_text(text)


@pytest.mark.slow
def test_a_cuda_benchmark_without_a_cuda_onnxruntime_stops_before_any_work(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    spec = root / "specs/tiny.yaml"
    text = spec.read_text()
    spec.write_text(
        text.replace("evaluate:\n", "deploy:\n  gpu: true\nevaluate:\n  latency: {device: cuda}\n")
    )
    before = {p: p.read_bytes() for p in (root / "runs/tiny/evaluate").iterdir() if p.is_file()}
    try:
        again = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
        assert again.code == 2 and "Traceback" not in again.err, again.err  # a setup error
        assert "evaluate.latency.device is cuda, but this onnxruntime" in again.err
        assert "has no CUDA provider (only " in again.err
        assert "set evaluate.latency.device: cpu" in again.err
        after = {p: p.read_bytes() for p in (root / "runs/tiny/evaluate").iterdir() if p.is_file()}
        assert after == before  # no CPU figure was measured or written in the GPU's name
    finally:
        spec.write_text(text)
