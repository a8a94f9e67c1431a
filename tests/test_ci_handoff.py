"""What the CI train job uploads: the chosen run's best weights and every run's metadata, enough
for the export, evaluate, test and package jobs, run from a fresh checkout with only the
artifacts they download."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import cvspec, write_tree
from ruamel.yaml import YAML

from cvspec.train.handoff import main, prune


def _run(path: str, checkpoint: str, state: str = "done") -> dict[str, Any]:
    return {
        f"{path}/run.json": json.dumps({"state": state, "checkpoint": checkpoint}),
        f"{path}/config.yaml": "model: {}\n",
        f"{path}/metrics.jsonl": "{}\n",
    }


def test_prune_keeps_only_the_current_runs_best_checkpoint(tmp_path: Path) -> None:
    train = tmp_path / "runs/p/train"
    write_tree(
        train,
        {
            "current.json": json.dumps({"run_id": "bbb", "path": "bbb", "task": "classification"}),
            "sweep.json": "{}",
            **_run("aaa", "checkpoints/best.pt"),
            "aaa/checkpoints/best.pt": b"a" * 10,
            "aaa/checkpoints/last.pt": b"a" * 30,
            **_run("bbb", "checkpoints/best.pt"),
            "bbb/checkpoints/best.pt": b"b" * 10,
            "bbb/checkpoints/last.pt": b"b" * 30,
            **_run("ccc", "weights/best.pt"),  # ultralytics' layout
            "ccc/weights/best.pt": b"c" * 10,
            "ccc/weights/last.pt": b"c" * 30,
            "ccc/weights/epoch5.pt": b"c" * 30,
        },
    )
    removed, size = prune(train)
    assert size == 10 + 30 + 30 + 10 + 30 + 30 and len(removed) == 6
    left = sorted(p.relative_to(train).as_posix() for p in train.rglob("*") if p.is_file())
    assert left == [
        "aaa/config.yaml", "aaa/metrics.jsonl", "aaa/run.json",
        "bbb/checkpoints/best.pt", "bbb/config.yaml", "bbb/metrics.jsonl", "bbb/run.json",
        "ccc/config.yaml", "ccc/metrics.jsonl", "ccc/run.json",
        "current.json", "sweep.json",
    ]  # fmt: skip


def test_a_failed_training_hands_on_its_logs_without_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = tmp_path / "train"
    write_tree(train, {**_run("aaa", "", "running"), "aaa/checkpoints/last.pt": b"x" * 1000})
    assert main([str(train)]) == 0  # no current.json: the training stopped before choosing
    assert not list(train.rglob("*.pt")) and (train / "aaa/metrics.jsonl").is_file()
    assert capsys.readouterr().out == (
        f"{train}: no current run's weights; removed 1 other checkpoint(s), 0.0 MB\n"
    )
    assert main([str(tmp_path / "none")]) == 0  # the job failed before training at all
    assert main([]) == 2


def _job_steps(root: Path, job: str) -> list[dict[str, Any]]:
    workflow = YAML(typ="safe").load((root / ".github/workflows/cvspec-tiny.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return steps


def _bash(script: str, cwd: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "CVSPEC_PROJECT": "tiny",
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(["bash", "-ec", script], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _checkout(source: Path, dest: Path, artifacts: dict[str, Path]) -> Path:
    """A fresh checkout of the repository (the spec and generated files), the data `dvc pull`
    brings, and only the artifacts a job downloads."""
    for part in ("specs", "generated", ".github", "data", ".git"):
        shutil.copytree(source / part, dest / part)
    for name, folder in artifacts.items():
        shutil.copytree(folder, dest / "runs/tiny" / name)
    return dest


@pytest.mark.slow
def test_the_later_jobs_run_from_what_the_train_job_uploads(tmp_path: Path) -> None:
    from test_train import TINY_SPEC, tiny_project

    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {train.optimizer.lr: [0.01, 0.0001]}\n"
        "deploy: {registry: ghcr.io/acme}\nci: {providers: [github]}\n"
    )
    root = tiny_project(tmp_path / "repo", spec)
    trained = cvspec("run", "specs/tiny.yaml", "--stage", "data", "--stage", "train", cwd=root)
    assert trained.code == 0, trained.err
    train = root / "runs/tiny/train"
    assert len(list(train.rglob("*.pt"))) == 4  # best and last of each sweep point
    # the train job's step after training, as the workflow has it
    (handoff,) = [
        s for s in _job_steps(root, "train") if s.get("name") == "keep what later jobs read"
    ]
    assert handoff["if"] == "always()"
    _bash(handoff["run"], root)
    current = json.loads((train / "current.json").read_text())["path"]
    assert [p.relative_to(train).as_posix() for p in train.rglob("*.pt")] == [
        f"{current}/checkpoints/best.pt"
    ]
    artifacts = {"data": root / "runs/tiny/data", "train": train}
    work = _checkout(root, tmp_path / "jobs", artifacts)
    for stage in ("export", "evaluate", "test"):
        result = cvspec("run", "specs/tiny.yaml", "--stage", stage, cwd=work, timeout=300)
        assert result.code == 0, f"{stage}: {result.err}"
    # packaging downloads the export and the evaluation only, and pushes from them
    steps = _job_steps(root, "package")
    downloads = [s["with"]["name"] for s in steps if "download-artifact" in s.get("uses", "")]
    assert downloads == [
        "cvspec-tiny-export",
        "cvspec-tiny-evaluate",
    ]
    package = _checkout(
        root,
        tmp_path / "package",
        {"export": work / "runs/tiny/export", "evaluate": work / "runs/tiny/evaluate"},
    )
    shutil.rmtree(package / "data")  # the package job pulls no data
    env = {"CVSPEC_PUSH": "1", "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    pushed = cvspec("run", "specs/tiny.yaml", "--stage", "package", cwd=package, env=env)
    assert pushed.code == 1 and "warning" not in pushed.err
    assert "no Docker engine at DOCKER_HOST=" in pushed.err  # past the files and gates it checks
