"""Evaluation: exact metrics, gate verdicts, and a failing gate failing the stage and the tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from helpers import REPO, Result, cvspec
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


def test_the_review_queue_says_when_it_holds_only_the_most_confident(tmp_path: Path) -> None:
    from cvspec.evaluate.card import _sweep_of
    from cvspec.evaluate.review import queue_summary

    assert queue_summary(25, 85) == (
        "the 25 most confident of 85 evaluated images the model puts in another class"
    )
    assert queue_summary(7, 7) == "7 evaluated image(s) the model puts in another class"
    assert queue_summary(7, None) == "7 evaluated image(s) the model puts in another class"
    from cvspec.evaluate.review import write_review

    items = [{"path": "a.png", "label": "x", "predicted": "y", "confidence": 0.9,
              "label_probability": 0.1}]  # fmt: skip
    write_review(tmp_path, items, "data/x", "test", 85)
    md = (tmp_path / "label_review.md").read_text()
    assert "Of the test split (under `data/x`): the 1 most confident of 85 evaluated" in md
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"points": [{}, {}], "best": "point-001", "best_run": "abc"}))
    assert _sweep_of(sweep, "abc") is not None
    assert _sweep_of(sweep, "def") is None  # a later run trained without the sweep


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


def test_the_wilson_interval_is_exact() -> None:
    from cvspec.evaluate.metrics import wilson

    low, high = wilson(0.875, 8)  # 7 of 8 right
    assert (round(low, 4), round(high, 4)) == (0.5291, 0.9776)
    assert wilson(1.0, 8) == (pytest.approx(0.6756, abs=1e-4), 1.0)
    assert wilson(0.0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))
    assert wilson(0.5, 0) == (0.0, 1.0)  # no image: nothing is known


def test_the_card_states_the_precision_its_image_count_allows() -> None:
    from cvspec.evaluate.card import _precision

    classified = {"task": "classification", "metrics": {"accuracy": 0.875, "images": 8}}
    assert _precision(classified) == (
        "Accuracy 0.875 on 8 images: 95% interval 0.53-0.98 (Wilson score interval); a larger "
        "evaluation split narrows it."
    )
    detected = {"task": "detection", "metrics": {"map50": 0.61234, "images": 6, "boxes": 14}}
    assert _precision(detected) == (
        "mAP50 0.612 on 6 evaluation images with 14 boxes: on so few, mAP is a rough figure; "
        "more labelled images would make it firmer."
    )
    many = {"task": "detection", "metrics": {"map50": 0.5, "images": 5000, "boxes": 9000}}
    assert _precision(many) == "mAP50 0.500 on 5000 evaluation images with 9000 boxes."
    assert _precision({"task": "detection", "metrics": {"map50": 0.5}}) is None  # not counted


def test_the_card_names_what_a_run_started_from_and_what_its_augmentations_did(
    tmp_path: Path,
) -> None:
    from cvspec.evaluate.card import _settings

    detect = {"model": f"{tmp_path}/specs/../weights/mybest.pt", "pretrained": True, "epochs": 30,
              "mosaic": 1.0, "mixup": 0.2, "fliplr": 0.5}  # fmt: skip
    run = _settings("detection", detect, {"arch": "yolov8s.yaml"}, tmp_path)
    assert (run["arch"], run["weights"]) == ("ultralytics/yolov8s.yaml", "weights/mybest.pt")
    assert run["augment"] == [
        "hflip",
        "mixup (off for the last 10 of 30 epochs: ultralytics' close_mosaic)",
        "mosaic (off for the last 10 of 30 epochs: ultralytics' close_mosaic)",
    ]
    outside = _settings("detection", {**detect, "model": "/elsewhere/mybest.pt"}, {}, tmp_path)
    assert outside["weights"] == "mybest.pt"  # never a path of this machine
    assert outside["arch"] == "ultralytics (the architecture in mybest.pt)"  # run.json lacks it
    cold = _settings("detection", {**detect, "pretrained": False}, {"arch": "a.yaml"}, tmp_path)
    assert cold["weights"] is None  # ultralytics builds the file's architecture, from scratch
    scratch = _settings("detection", {"model": "yolov8n.yaml", "epochs": 3, "mosaic": 1.0,
                                      "close_mosaic": 2}, {}, tmp_path)  # fmt: skip
    assert (scratch["arch"], scratch["weights"]) == ("ultralytics/yolov8n.yaml", None)
    assert scratch["augment"] == [
        "mosaic (off for the last 2 of 3 epochs: ultralytics' close_mosaic)"
    ]  # the run's own close_mosaic (a training override), not ultralytics' default
    never = _settings("detection", {"model": "m.yaml", "epochs": 10, "mosaic": 1.0}, {}, tmp_path)
    assert never["augment"] == [
        "mosaic (never applied: ultralytics' close_mosaic (10) covers all 10 epochs of this run)"
    ]
    always = _settings("detection", {"epochs": 1, "mosaic": 1.0, "close_mosaic": 0}, {}, None)
    assert always["augment"] == ["mosaic"]
    timm = {"spec": "specs/tiny.yaml", "model": {"name": "resnet10t", "weights": "../w/a.pth"}}
    assert _settings("classification", timm, {}, tmp_path)["weights"] == "w/a.pth"


def test_the_card_lists_no_classification_augmentation_that_changes_no_image() -> None:
    """A step of probability 0 (a profile's `--set data.augment.0.hflip.p=0`), or a
    color_jitter of no range, is in the run's config but flips or jitters nothing: the card
    leaves it out, as it leaves out a detector's augmentation whose arguments are 0."""
    from cvspec.evaluate.card import _settings

    augment = [
        {"hflip": {"p": 0.0}},
        {"random_resized_crop": {"scale": [0.8, 1.0], "ratio": [0.75, 1.33]}},
        {"color_jitter": {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0,
                          "p": 0.8}},
        {"rotate": {"degrees": 10.0, "p": 0.5}},
        {"mixup": {"alpha": 0.2, "p": 0.0}},
    ]  # fmt: skip
    config = {"model": {"name": "resnet10t"}, "data": {"augment": augment}}
    assert _settings("classification", config)["augment"] == ["random_resized_crop", "rotate"]


def test_the_card_lists_a_detection_augmentation_set_by_any_of_its_arguments(
    tmp_path: Path,
) -> None:
    """color_jitter sets hsv_h/hsv_s/hsv_v and affine translate/scale/shear: one of them is
    enough for the augmentation to be on, as the generated args.yaml of such a spec shows."""
    from cvspec.evaluate.card import _settings

    (tmp_path / "specs").mkdir()
    spec = (
        (REPO / "specs/shapes.yaml")
        .read_text()
        .replace(
            "    - hflip: {p: 0.5}\n",
            "    - color_jitter: {brightness: 0.0, saturation: 0.5, hue: 0.1}\n"
            "    - affine: {translate: 0.0, scale: 0.3}\n",
        )
    )
    (tmp_path / "specs/shapes.yaml").write_text(spec)
    assert cvspec("build", cwd=tmp_path).code == 0
    args = yaml.safe_load((tmp_path / "generated/shapes/train/args.yaml").read_text())
    assert (args["hsv_v"], args["translate"]) == (0.0, 0.0)
    assert _settings("detection", args, {}, tmp_path)["augment"] == ["affine", "color_jitter"]


def test_a_detection_cards_training_map_says_it_is_not_the_evaluations() -> None:
    """ultralytics' mAP during training (rect batches padded past image_size, IoU 0.7) differs
    from the evaluation's on the same split; the card says whose each figure is."""
    from cvspec.evaluate.card import _settings, _training

    args = {"model": "yolov8n.yaml", "epochs": 30, "batch": 16, "optimizer": "AdamW"}
    status = {"task": "detection", "metrics": {"best_epoch": 30, "epochs": 30, "map50": 0.851}}
    line = _training(_settings("detection", args, status, None), status, None).splitlines()[-1]
    assert line == (
        "- Best epoch 30 of 30; map50 0.8510 (ultralytics' validation during training: best.pt "
        "on inputs padded beyond the image size, NMS IoU 0.7; the evaluation below measures the "
        "exported model on the inputs the server makes)"
    )
    timm = {"task": "classification", "metrics": {"best_epoch": 1, "epochs": 1, "val_acc": 0.5}}
    assert _training(_settings("classification", {}, timm, None), timm, None).endswith(
        "- Best epoch 1 of 1; val_acc 0.5000\n"
    )


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A tiny project trained for one epoch whose latency gate cannot pass, then evaluated."""
    root = tiny_project(tmp_path_factory.mktemp("gated"), GATED_SPEC)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--stage", "evaluate", cwd=root, timeout=600
    )
    return root, result


@contextmanager
def edited(spec: Path, *changes: tuple[str, str]) -> Iterator[None]:
    """The spec with each `(old, new)` change made once while the block runs, then as it was
    (the module's tests share one trained project)."""
    text = changed = spec.read_text()
    for old, new in changes:
        assert old in changed, old
        changed = changed.replace(old, new, 1)
    spec.write_text(changed)
    try:
        yield
    finally:
        spec.write_text(text)


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
    # the same queue as a Label Studio import, the images served from the repository root
    tasks = json.loads((root / "runs/tiny/evaluate/label_review.labelstudio.json").read_text())
    assert [(t["data"]["path"], t["data"]["current_label"]) for t in tasks] == [
        (r["path"], r["label"]) for r in review
    ]
    assert all(t["data"]["image"] == f"/data/local-files/?d=data/tiny/{t['data']['path']}"
               for t in tasks)  # fmt: skip
    choices = [t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks]
    assert choices == [[r["predicted"]] for r in review]
    assert {t["predictions"][0]["model_version"] for t in tasks} <= {report["run_id"]}
    config = ET.fromstring((root / "runs/tiny/evaluate/label_studio.xml").read_text())
    assert [c.get("value") for c in config.iter("Choice")] == ["checks", "columns", "rows"]


@pytest.mark.slow
def test_a_failing_gate_fails_the_generated_test(gated: tuple[Path, Result]) -> None:
    root, _ = gated
    stage = cvspec("run", "specs/tiny.yaml", "--stage", "test", cwd=root, timeout=300)
    assert stage.code == 1
    cases = ET.parse(root / "runs/tiny/test/junit.xml").getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["test_gate_latency_p50_ms"]  # the data tests of the tiny set pass
    summary = (root / "runs/tiny/test/summary.md").read_text()  # a CI job's summary
    assert "| `test_gate_latency_p50_ms` | Failed: gate latency_p50_ms FAILED: " in summary
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
        f"gate latency_p50_ms FAILED: measured {measured:.6g}, required <= 0.0001 (from "
        "specs/tiny.yaml:"
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
    assert card.startswith(  # the run's options: here none (a pull request's say `ci`)
        "# Model card: tiny\n\nRun with the spec as written (no `--profile`, no `--set`).\n\n"
    )
    assert "No data report: run the data stage" in card  # only train and evaluate ran
    assert "Label review: " in card
    from cvspec.evaluate.metrics import wilson

    m = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())["metrics"]
    low, high = wilson(m["accuracy"], m["images"])
    assert (
        f"- Accuracy {m['accuracy']:.3f} on {m['images']} images: 95% interval "
        f"{low:.2f}-{high:.2f} (Wilson score interval); a larger evaluation split narrows it.\n"
    ) in card
    assert "a few percentage points" not in card  # no invented figure


@pytest.mark.slow
def test_the_model_card_describes_the_evaluated_run_not_the_spec_as_it_reads_now(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    changes = ("epochs: 1", "epochs: 7"), ("image_size: 16", "image_size: 64")
    with edited(root / "specs/tiny.yaml", *changes):
        again = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
        assert again.code == 1, again.err  # the impossible latency gate, as before
        card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
        assert "- 1 epochs, batch 8, adamw (lr 0.01, weight decay 0)" in card
        assert "- Input: RGB images resized to 16 x 16 px" in card


@pytest.mark.slow
def test_a_cuda_benchmark_without_a_cuda_onnxruntime_stops_before_any_work(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    cuda = ("evaluate:\n", "deploy:\n  gpu: true\nevaluate:\n  latency: {device: cuda}\n")
    before = {p: p.read_bytes() for p in (root / "runs/tiny/evaluate").iterdir() if p.is_file()}
    with edited(root / "specs/tiny.yaml", cuda):
        again = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
        assert again.code == 2 and "Traceback" not in again.err, again.err  # a setup error
        assert "evaluate.latency.device is cuda, but this onnxruntime" in again.err
        assert "has no CUDA provider (only " in again.err
        assert "set evaluate.latency.device: cpu" in again.err
        after = {p: p.read_bytes() for p in (root / "runs/tiny/evaluate").iterdir() if p.is_file()}
        assert after == before  # no CPU figure was measured or written in the GPU's name


@pytest.mark.slow
def test_the_review_queues_corrections_go_into_the_spec_as_they_are(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    review = json.loads((root / "runs/tiny/evaluate/label_review.json").read_text())
    assert review  # one epoch on the tiny set leaves mistakes to review
    md = (root / "runs/tiny/evaluate/label_review.md").read_text()
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    relabel = "".join(f"    {line}\n" for line in block.splitlines())  # as a user pastes it
    plain = cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root, timeout=300)
    assert plain.code == 0, plain.err
    before = json.loads((root / "runs/tiny/data/report.json").read_text())
    assert before["relabeled"] == {"count": 0, "labels": [], "unknown_paths": []}
    with edited(root / "specs/tiny.yaml", ("\ndata:\n", "\ndata:\n  relabel:\n" + relabel)):
        assert cvspec("validate", "specs/tiny.yaml", cwd=root).code == 0
        stage = cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root, timeout=300)
        assert f"{len(review)} label(s) corrected by data.relabel" in stage.err, stage.err
        report = json.loads((root / "runs/tiny/data/report.json").read_text())
        assert report["relabeled"]["count"] == len(review)
        assert {(r["path"], r["was"], r["now"]) for r in report["relabeled"]["labels"]} == {
            (r["path"], r["label"], r["predicted"]) for r in review
        }
        assert (
            "## labels corrected by data.relabel" in (root / "runs/tiny/data/report.md").read_text()
        )
        assert before["dataset"] != report["dataset"]  # other labels: another dataset version


def test_the_card_says_which_options_the_run_used() -> None:
    from cvspec.evaluate.card import _options

    assert _options({"profile": None, "set": []}) == (
        "Run with the spec as written (no `--profile`, no `--set`).\n"
    )
    assert _options(None) == _options({})  # a report written before options were recorded
    assert _options({"profile": "ci", "set": ["train.epochs=3"]}) == (
        "**Run with `--profile ci --set train.epochs=3`**: the spec's values with these on top, "
        "not the spec as written; the training section shows what the model was trained with.\n"
    )


@pytest.mark.slow
def test_metrics_and_card_record_the_profile_and_sets_of_the_run(
    gated: tuple[Path, Result],
) -> None:
    root, _ = gated
    before = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())
    assert before["options"] == {"profile": None, "set": []}
    sets = ("--set", "evaluate.gates.latency_p50_ms.max=5000")
    again = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", *sets, cwd=root, timeout=300)
    assert again.code == 0, again.err  # the impossible gate, relaxed for this run only
    report = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())
    assert report["options"] == {
        "profile": None,
        "set": ["evaluate.gates.latency_p50_ms.max=5000"],
    }
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    assert card.splitlines()[2] == (
        "**Run with `--set evaluate.gates.latency_p50_ms.max=5000`**: the spec's values with "
        "these on top, not the spec as written; the training section shows what the model was "
        "trained with."
    )
