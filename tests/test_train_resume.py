"""Checkpoints and resume: a run killed with SIGKILL ends with the metrics of an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cvspec
from test_train import TINY_SPEC, current_run, model_rows, tiny_project, train_module

EPOCHS = 4
SPEC = TINY_SPEC.replace("epochs: 2", f"epochs: {EPOCHS}")


def finished_epochs(run: Path) -> int:
    """Epochs with a checkpoint (metrics.jsonl is rewritten after each checkpoint)."""
    metrics = run / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


@pytest.mark.slow
def test_kill_9_then_resume_reaches_the_metrics_of_an_unbroken_run(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, SPEC, per_class=40)
    args = [sys.executable, "-m", "cvspec.train", "--config-dir", "generated/tiny/train",
            "+train.threads=1"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    train = root / "runs/tiny/train"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            pointer = train / "current.json"
            if pointer.is_file() and finished_epochs(current_run(root)) >= 1:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed = current_run(root)
    done_at_kill = finished_epochs(killed)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= done_at_kill < EPOCHS, "the run must die mid-training for this test to mean much"
    assert json.loads((killed / "run.json").read_text())["state"] == "running"
    for stage in ("export", "evaluate"):  # a half-trained model is neither shipped nor judged
        early = cvspec("run", "specs/tiny.yaml", "--stage", stage, cwd=root, timeout=300)
        assert early.code == 2 and "Traceback" not in early.err, early.err
        assert (
            f"error: run {killed.name} has not finished training ({done_at_kill} epoch(s) done;"
        ) in early.err
        assert "rerun the train stage, which resumes it" in early.err

    resumed = train_module("--config-dir", "generated/tiny/train", "--resume", cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {killed.name} after epoch {done_at_kill}" in resumed.stderr
    assert json.loads((killed / "run.json").read_text())["state"] == "done"
    assert not list((killed / "checkpoints").glob(".*.tmp"))

    straight = train_module(
        "--config-dir", "generated/tiny/train", "--run-id", "straight", "+train.threads=1",
        cwd=root,
    )  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    assert model_rows(killed) == model_rows(train / "straight")
    assert len(model_rows(killed)) == EPOCHS


def test_resume_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    root = tiny_project(tmp_path)
    result = train_module("--config-dir", "generated/tiny/train", "--resume", cwd=root)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: no trained model: {root / 'runs/tiny/train/current.json'} is missing; "
        "run the train stage first\n"
    )


def test_a_damaged_checkpoint_is_named(tmp_path: Path) -> None:
    from cvspec.errors import CvspecError
    from cvspec.train.checkpoint import load, save

    path = tmp_path / "last.pt"
    save({"meta": {"task": "classification"}, "epoch": 1}, path)
    assert load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CvspecError, match=f"checkpoint {path} does not load"):
        load(path)


class _Planted:
    """What a tampered checkpoint could hold: an object whose unpickling runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (self.marker, "ran"))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    """A checkpoint is loaded as tensors and plain data only (torch's weights_only): one from a
    CI artifact or a shared runs/ folder cannot run code on resume or export."""
    import torch

    from cvspec.errors import CvspecError
    from cvspec.train.checkpoint import load

    marker, path = tmp_path / "marker", tmp_path / "last.pt"
    torch.save({"meta": {"task": "classification"}, "epoch": _Planted(marker)}, path)
    with pytest.raises(CvspecError, match=f"checkpoint {path} does not load"):
        load(path)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [(signal.SIGINT, 130, "interrupted."), (signal.SIGTERM, 143, "terminated (SIGTERM).")],
)
def test_ctrl_c_or_sigterm_says_so_and_a_rerun_of_the_same_command_resumes(
    tmp_path: Path, stop: signal.Signals, code: int, said: str
) -> None:
    """Ctrl-C in a terminal, SIGTERM from a cancelled CI job or `kill`: the run stops, says so
    and how to go on, and the same command resumes it."""
    root = tiny_project(tmp_path, SPEC, per_class=40)
    command = [sys.executable, "-m", "cvspec", "run", "specs/tiny.yaml", "--stage", "train"]
    env = {k: v for k, v in os.environ.items() if k != "CVSPEC_DEBUG"}
    proc = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (root / "runs/tiny/train/current.json").is_file() and finished_epochs(
                current_run(root)
            ) >= 1:
                break
            time.sleep(0.01)
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    if finished_epochs(current_run(root)) >= EPOCHS:
        pytest.skip("the training finished before the interrupt arrived")
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.rstrip().endswith(
        f"error: {said} Run the same command again to go on: a training resumes after "
        "its last finished epoch, and a finished training or export is reused"
    )
    again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming run {current_run(root).name} after epoch" in again.stderr
