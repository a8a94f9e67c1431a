"""Reproducibility: what a run records to be reproduced later, and what it says when the model
it reports was made under other options or other packages than the run that reports it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import cvspec
from test_train import TINY_SPEC, tiny_project

from cvspec.train.environment import drift, environment

ONE_EPOCH = TINY_SPEC.replace("epochs: 2", "epochs: 3")  # --set brings it down to 1


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project in a real git repository, trained with `--set train.epochs=1`."""
    root = tiny_project(tmp_path_factory.mktemp("repro"), ONE_EPOCH)
    shutil.rmtree(root / ".git")  # the helper's marker: a real repository instead
    (root / ".gitignore").write_text("runs/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "tiny")
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--set", "train.epochs=1",
        cwd=root, timeout=600,
    )  # fmt: skip
    assert result.code == 0, result.err
    return root


@pytest.mark.slow
def test_a_card_says_the_model_was_trained_with_other_options_than_its_evaluation(
    trained: Path,
) -> None:
    root = trained
    pointer = json.loads((root / "runs/tiny/train/current.json").read_text())
    assert pointer["options"] == {"profile": None, "set": ["train.epochs=1"]}
    plain = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
    assert plain.code in (0, 1), plain.err  # no gates: 0; the point is what the card says
    assert (
        f"evaluating run {pointer['run_id']}, the current one, trained with "
        "`--set train.epochs=1`, not with this command's options; to evaluate what these "
        "options train, run the train stage with them first"
    ) in " ".join(plain.err.split())
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    lines = card.splitlines()
    assert lines[2] == "Run with the spec as written (no `--profile`, no `--set`)."
    assert lines[4] == (
        "**The model was trained with `--set train.epochs=1`**, not with this evaluation's "
        "options: the training section shows its values."
    )
    report = json.loads((root / "runs/tiny/evaluate/metrics.json").read_text())
    assert report["options"] == {"profile": None, "set": []} and "provenance" not in report
    prov = json.loads((root / "runs/tiny/evaluate/provenance.json").read_text())
    assert prov["train_options"] == {"profile": None, "set": ["train.epochs=1"]}
    same = cvspec(
        "run", "specs/tiny.yaml", "--stage", "evaluate", "--set", "train.epochs=1",
        cwd=root, timeout=300,
    )  # fmt: skip
    assert same.code in (0, 1), same.err
    assert "evaluating run" not in same.err
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    assert "**The model was trained with" not in card  # the options it was trained with


@pytest.mark.slow
def test_metrics_and_card_record_what_reproducing_the_model_needs(trained: Path) -> None:
    root = trained
    assert cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root, timeout=300).code == 0
    evaluated = cvspec("run", "specs/tiny.yaml", "--stage", "evaluate", cwd=root, timeout=300)
    assert evaluated.code in (0, 1), evaluated.err
    prov = json.loads((root / "runs/tiny/evaluate/provenance.json").read_text())
    spec_sha = hashlib.sha256((root / "specs/tiny.yaml").read_bytes()).hexdigest()
    assert prov["spec"] == {"specs/tiny.yaml": spec_sha}
    assert prov["git"] == {"commit": _git(root, "rev-parse", "HEAD"), "dirty": False}
    data = json.loads((root / "runs/tiny/data/report.json").read_text())["dataset"]
    assert prov["data_fingerprint"] == data["fingerprint"]
    model = (root / "runs/tiny/export/model.onnx").read_bytes()  # the file measured, by digest
    exported = json.loads((root / "runs/tiny/export/export.json").read_text())
    assert prov["model_sha256"] == exported["model_sha256"] == hashlib.sha256(model).hexdigest()
    here = environment()
    assert prov["trained_with"] == prov["evaluated_with"] == here
    assert {"python", "cvspec", "torch", "timm", "numpy", "onnxruntime"} <= set(here)
    run = json.loads((root / "runs/tiny/train/current.json").read_text())["run_id"]
    status = json.loads((root / f"runs/tiny/train/{run}/run.json").read_text())
    assert status["environment"] == here
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    section = card.split("## Reproduce\n", 1)[1]
    assert f"- Spec: `specs/tiny.yaml`, sha256 `{spec_sha[:16]}`" in section
    assert f"- Commit: `{prov['git']['commit']}`\n" in section
    assert f"- Data: fingerprint `{data['fingerprint'][:16]}`" in section
    assert "- Trained by: `cvspec run SPEC --stage train --set train.epochs=1`" in section
    assert f"torch {here['torch']}" in section


@pytest.mark.slow
def test_a_reused_run_trained_under_other_packages_says_which(trained: Path) -> None:
    root = trained
    run = json.loads((root / "runs/tiny/train/current.json").read_text())["run_id"]
    status_file = root / f"runs/tiny/train/{run}/run.json"
    status = json.loads(status_file.read_text())
    older = {**status["environment"], "torch": "1.0.0"}
    status_file.write_text(json.dumps({**status, "environment": older}))
    again = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--set", "train.epochs=1",
        cwd=root, timeout=300,
    )  # fmt: skip
    assert again.code == 0, again.err
    assert f"reused run {run}" in again.err
    assert f"run {run} was trained with other packages than this environment has " in again.err
    assert f"torch 1.0.0 -> {environment()['torch']}" in again.err


def test_drift_names_each_package_that_differs() -> None:
    now = {"python": "3.11.9", "torch": "2.5.1"}
    assert drift(None, now) == []  # a run recorded before runs recorded packages
    assert drift(now, now) == []
    assert drift({"python": "3.11.9", "torch": "2.4.0", "timm": "1.0"}, now) == [
        "timm 1.0 -> absent",
        "torch 2.4.0 -> 2.5.1",
    ]


@pytest.mark.slow
def test_new_weights_at_the_same_path_train_a_new_run(tmp_path: Path) -> None:
    import timm
    import torch

    spec = TINY_SPEC.replace(
        "image_size: 16}", "image_size: 16, pretrained: true, weights: ../weights/start.pth}"
    ).replace("epochs: 2", "epochs: 1")
    root = tiny_project(tmp_path, spec)
    start = root / "weights/start.pth"
    start.parent.mkdir()
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet10t", num_classes=3).state_dict(), start)
    first = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert first.code == 0, first.err
    run = json.loads((root / "runs/tiny/train/current.json").read_text())["run_id"]
    torch.manual_seed(1)  # other starting weights, as a newer pretrained file brings
    torch.save(timm.create_model("resnet10t", num_classes=3).state_dict(), start)
    again = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert again.code == 0, again.err
    assert "reused" not in again.err  # the finished run started from the old weights
    assert json.loads((root / "runs/tiny/train/current.json").read_text())["run_id"] != run
    same = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert "reused run " in same.err, same.err  # the same file again: the run it made
