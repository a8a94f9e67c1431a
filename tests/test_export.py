"""Export: ONNX and TorchScript that match torch, plus the files the server loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cvspec
from test_train import TINY_SPEC, current_run, tiny_project

from cvspec.preprocess import Preprocess, open_image, to_array

SPEC = TINY_SPEC.replace("epochs: 2", "epochs: 1") + "export: [onnx, torchscript]\n"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project trained for one epoch and exported."""
    root = tiny_project(tmp_path_factory.mktemp("export"), SPEC)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--stage", "export", cwd=root, timeout=600
    )
    assert result.code == 0, result.err
    return root


def _split(root: Path, split: str) -> list[Any]:
    """The records of one split, as the data stage assigns them."""
    from types import SimpleNamespace

    from cvspec.data.index import build_index
    from cvspec.spec.model import ClassificationData

    data = ClassificationData.model_validate({"path": "data/tiny", "splits": {"val": 0.25,
                                              "test": 0.25, "seed": 0}})  # fmt: skip
    return list(build_index(SimpleNamespace(data=data), root / "data/tiny").split(split))


def _split_paths(root: Path, split: str) -> list[str]:
    return [str(r.path) for r in _split(root, split)]


def _test_images(root: Path) -> tuple[list[object], list[int]]:
    """The test split as the server would receive it: file bytes, decoded by open_image."""
    records = _split(root, "test")
    images = [open_image((root / "data/tiny" / r.path).read_bytes()) for r in records]
    return images, [int(r.label) for r in records if r.label is not None]


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_export_writes_what_the_server_loads(exported: Path) -> None:
    out = exported / "runs/tiny/export"
    assert sorted(p.name for p in out.iterdir()) == [
        "export.json", "labels.json", "model.onnx", "model.ts", "preprocess.json",
    ]  # fmt: skip
    assert json.loads((out / "labels.json").read_text()) == ["checks", "columns", "rows"]
    pre = Preprocess.from_json(json.loads((out / "preprocess.json").read_text()))
    assert pre == Preprocess(16)
    info = json.loads((out / "export.json").read_text())
    assert info["run_id"] == current_run(exported).name
    assert info["formats"] == ["onnx", "torchscript"]
    assert 0 <= info["parity"]["onnx"] <= TOLERANCE
    assert 0 <= info["parity"]["torchscript"] <= TOLERANCE


@pytest.mark.slow
def test_onnx_matches_torch_on_real_images_at_any_batch_size(exported: Path) -> None:
    import numpy as np
    import torch

    from cvspec.train.checkpoint import load
    from cvspec.train.model import from_checkpoint

    ckpt = load(current_run(exported) / "checkpoints/best.pt")
    model = from_checkpoint(ckpt["meta"], ckpt["model"])
    images, _ = _test_images(exported)
    batch = to_array(images, Preprocess(16))
    sess = _session(exported / "runs/tiny/export/model.onnx")
    name = sess.get_inputs()[0].name
    with torch.inference_mode():
        reference = model(torch.from_numpy(batch)).numpy()
    whole = sess.run(None, {name: batch})[0]
    single = sess.run(None, {name: batch[:1]})[0]
    assert whole.shape == (len(images), 3)
    assert float(np.abs(whole - reference).max()) <= TOLERANCE
    assert float(np.abs(single - reference[:1]).max()) <= TOLERANCE


@pytest.mark.slow
def test_evaluation_predicts_exactly_what_the_server_would(exported: Path) -> None:
    import numpy as np

    result = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=exported, timeout=300)
    assert result.code == 0, result.err
    out = exported / "runs/tiny/export"
    pre = Preprocess.from_json(json.loads((out / "preprocess.json").read_text()))
    sess = _session(out / "model.onnx")
    images, labels = _test_images(exported)
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {name: to_array([img], pre)})[0] for img in images])
    accuracy = float((logits.argmax(axis=1) == np.asarray(labels)).mean())
    report = json.loads((exported / "runs/tiny/evaluate/metrics.json").read_text())
    assert report["metrics"]["accuracy"] == accuracy
    assert report["metrics"]["images"] == len(labels)


@pytest.mark.slow
def test_a_current_export_is_not_redone(exported: Path) -> None:
    before = (exported / "runs/tiny/export/model.onnx").stat().st_mtime_ns
    result = cvspec("run", "specs/tiny.yaml", "--stage", "export", cwd=exported, timeout=300)
    assert result.code == 0, result.err
    assert "up to date: model.onnx, model.ts from run" in result.err
    assert (exported / "runs/tiny/export/model.onnx").stat().st_mtime_ns == before


@pytest.mark.slow
def test_the_drift_baseline_ships_only_with_the_run_that_trained_on_its_images(
    exported: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(exported, root, symlinks=True)
    shipped = root / "runs/tiny/export/stats.json"
    assert cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root).code in (0, 1)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "export", cwd=root, timeout=300)
    assert result.code == 0, result.err
    assert "up to date" in result.err and "no drift baseline" not in result.err
    assert shipped.read_bytes() == (root / "runs/tiny/data/stats.json").read_bytes()

    # A training image changes and only the data stage runs again: its stats.json now
    # describes images the current run never trained on, and the export stops shipping it.
    image = root / "data/tiny" / _split_paths(root, "train")[0]
    run_id = current_run(root).name
    train = json.loads((root / "runs/tiny/data/report.json").read_text())
    from PIL import Image

    with Image.open(image) as img:
        img.convert("RGB").rotate(90).save(image)
    assert cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root).code in (0, 1)
    assert json.loads((root / "runs/tiny/data/report.json").read_text()) != train
    described = json.loads((root / "runs/tiny/data/stats.json").read_text())["train_images"]
    trained = json.loads((current_run(root) / "run.json").read_text())["train_images"]
    result = cvspec("run", "specs/tiny.yaml", "--stage", "export", cwd=root, timeout=300)
    assert result.code == 0, result.err
    assert current_run(root).name == run_id
    assert described != trained
    assert "no drift baseline shipped: runs/tiny/data/stats.json describes" in result.err
    assert not shipped.exists()
