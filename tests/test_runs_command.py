"""`cvspec runs`: the training runs of a project, their metrics, and what sets each apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cvspec
from test_train import TINY_SPEC, tiny_project


def test_no_runs_yet_says_how_to_make_one(tmp_path: Path) -> None:
    root = tiny_project(tmp_path)
    result = cvspec("runs", "specs/tiny.yaml", cwd=root)
    assert (result.code, result.out) == (0, "")
    assert "no training runs of tiny yet (runs/tiny/train/)" in result.err
    listed = cvspec("runs", "specs/tiny.yaml", "--format", "json", cwd=root)
    assert json.loads(listed.out) == {"project": "tiny", "current": None, "runs": []}


@pytest.mark.slow
def test_runs_lists_each_run_with_its_metrics_and_what_differs(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, TINY_SPEC.replace("epochs: 2", "epochs: 1"))
    for lr in ("0.01", "0.02"):
        trained = cvspec(
            "run", "specs/tiny.yaml", "--stage", "train", "--set", f"train.optimizer.lr={lr}",
            cwd=root, timeout=300,
        )  # fmt: skip
        assert trained.code == 0, trained.err
    listed = cvspec("runs", "specs/tiny.yaml", "--format", "json", cwd=root)
    assert (listed.code, listed.err) == (0, "")
    report = json.loads(listed.out)
    current, other = report["runs"]  # the current run first
    assert current["current"] and current["run_id"] == report["current"]
    assert (current["state"], current["epochs"], current["differs"]) == ("done", 1, {})
    assert other["differs"] == {"train.optimizer.lr": [0.01, 0.02]}
    assert {"val_accuracy", "val_loss"} <= set(current["metrics"])
    text = cvspec("runs", "specs/tiny.yaml", cwd=root)
    assert text.code == 0, text.err
    assert f"* {current['run_id']}" in text.out
    assert f"  {other['run_id']}" in text.out and "train.optimizer.lr=0.01" in text.out
    # the options that made a run make it current again, without training
    back = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--set", "train.optimizer.lr=0.01",
        cwd=root, timeout=300,
    )  # fmt: skip
    assert f"reused run {other['run_id']}" in back.err
    again = json.loads(cvspec("runs", "specs/tiny.yaml", "--format", "json", cwd=root).out)
    assert again["current"] == other["run_id"]
