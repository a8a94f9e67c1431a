"""Training: the train stage and `python -m cvspec.train` on real (tiny) data, real torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, cvspec, project

TINY_SPEC = """\
cvspec: 1
project: {name: tiny}
task: classification
data:
  path: ../data/tiny
  splits: {val: 0.25, test: 0.25, seed: 0}
model: {arch: timm/resnet10t, image_size: 16}
train:
  epochs: 2
  batch_size: 8
  optimizer: {name: adamw, lr: 0.01, weight_decay: 0.0}
  workers: 0
"""
CLASSES = ("checks", "columns", "rows")
# Keys of a metrics row that measure time, not the model.
TIMING = ("images_per_s", "train_seconds", "epoch_seconds")


def write_images(folder: Path, per_class: int = 16, size: int = 16, seed: int = 0) -> None:
    """An imagefolder dataset of stripes and checks with noise: tiny, yet learnable."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = {"rows": (yy // 2) % 2, "columns": (xx // 2) % 2, "checks": (yy // 2 + xx // 2) % 2}
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            grey = patterns[name] * 160 + rng.integers(0, 90, (size, size))
            pixels = np.stack([grey, np.roll(grey, i % 3, axis=1), grey], axis=-1)
            img = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
            img.save(folder / name / f"{i:03d}.png")


def tiny_project(tmp_path: Path, spec: str = TINY_SPEC, per_class: int = 16) -> Path:
    """A repository with specs/tiny.yaml, its images under data/tiny, built."""
    root = project(tmp_path, spec, name="tiny.yaml")
    write_images(root / "data" / "tiny", per_class)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root


def train_module(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cvspec.train ARGS` in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONHASHSEED": "random", **(env or {})}
    env.pop("CVSPEC_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "cvspec.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def model_rows(run: Path) -> list[dict[str, object]]:
    """metrics.jsonl without the timing columns."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def current_run(root: Path, project_name: str = "tiny") -> Path:
    """The run runs/<project>/train/current.json points at."""
    train = root / "runs" / project_name / "train"
    return train / json.loads((train / "current.json").read_text())["path"]


@pytest.mark.slow
def test_digits_example_runs_every_stage_to_a_real_accuracy(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert cvspec("init", "--example", "digits", ".", cwd=tmp_path).code == 0
    assert cvspec("build", cwd=tmp_path).code == 0
    result = cvspec(
        "run", "specs/digits.yaml", "--profile", "ci", "--set", "train.sweep={}",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert result.code == 0, result.err
    for stage in ("data", "train", "evaluate", "export", "test"):
        assert f"ok {stage} (" in result.err
    run = current_run(tmp_path, "digits")
    status = json.loads((run / "run.json").read_text())
    assert status["state"] == "done" and status["task"] == "classification"
    assert status["classes"] == [str(d) for d in range(10)]
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.yaml", "metrics.csv", "metrics.jsonl", "run.json",
    ]  # fmt: skip
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(model_rows(run)) == 2  # the ci profile reached the trainer
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")
    assert "epochs: 2" in (run / "config.yaml").read_text()
    assert f"trained run {run.name}: val accuracy" in result.err
    assert "the data stage's last run failed" not in result.err
    report = json.loads((tmp_path / "runs/digits/evaluate/metrics.json").read_text())
    assert report["passed"] and report["split"] == "test"
    assert report["metrics"]["accuracy"] > 0.9
    assert (tmp_path / "runs/digits/test/junit.xml").is_file()
    assert (tmp_path / "runs/digits/evaluate/MODEL_CARD.md").is_file()


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics(tmp_path: Path) -> None:
    root = tiny_project(tmp_path)
    runs = []
    for name in ("first", "second"):
        result = train_module(
            "--config-dir", "generated/tiny/train", "--run-id", name, "+train.threads=1", cwd=root
        )
        assert result.returncode == 0, result.stderr
        runs.append(model_rows(root / "runs/tiny/train" / name))
    assert len(runs[0]) == 2
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_a_rerun_reuses_the_finished_run(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, TINY_SPEC.replace("epochs: 2", "epochs: 1"))
    first = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert first.code == 0, first.err
    again = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert again.code == 0, again.err
    run = current_run(root)
    assert f"reused run {run.name}" in again.err
    changed = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--set", "train.seed=1", cwd=root
    )
    assert changed.code == 0 and current_run(root) != run  # another config, another run


def test_invalid_hydra_override_is_a_clear_error(tmp_path: Path) -> None:
    root = tiny_project(tmp_path)
    unknown = train_module("--config-dir", "generated/tiny/train", "train.epoch=3", cwd=root)
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "error: invalid training override: Could not override 'train.epoch'. "
        "To append to your config use +train.epoch=3\n"
    )
    bad_type = train_module("--config-dir", "generated/tiny/train", "train.epochs=many", cwd=root)
    assert bad_type.returncode == 2
    assert bad_type.stderr.startswith(
        "error: invalid training config: train.epochs: Input should be a valid integer"
    )
    syntax = train_module("--config-dir", "generated/tiny/train", "train.epochs=[1", cwd=root)
    assert syntax.returncode == 2 and syntax.stderr.startswith("error: invalid training override")
    for result in (unknown, bad_type, syntax):
        assert "Traceback" not in result.stderr
    assert not (root / "runs").exists()


def test_pretrained_without_local_weights_says_how_to_provide_them(tmp_path: Path) -> None:
    """Nothing is downloaded: the spec is invalid, so build and run stop at its line, not
    the training."""
    spec = TINY_SPEC.replace("image_size: 16}", "image_size: 16, pretrained: true}")
    root = project(tmp_path, spec, name="tiny.yaml")
    write_images(root / "data" / "tiny", 16)
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if "pretrained" in text)
    for args in (["build"], ["run", "specs/tiny.yaml", "--stage", "train"]):
        result = cvspec(*args, cwd=root)
        assert result.code == 2 and "Traceback" not in result.err
        assert result.err.startswith(
            f"specs/tiny.yaml:{line}:59: error[pretrained]: model.pretrained: true, but "
            "pretrained weights cannot be downloaded here\n"
        )
        assert "help: download the weights where you have network access, then set " in (result.err)
        assert "\nerror:" not in result.err  # said once, at the line, not twice
    assert not (root / "runs").exists()


def test_an_unknown_timm_model_is_reported_at_model_arch_with_the_closest_names(
    tmp_path: Path,
) -> None:
    spec = TINY_SPEC.replace("timm/resnet10t", "timm/resnet10tt")
    root = tiny_project(tmp_path, spec)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if "resnet10tt" in text)
    assert (
        f"specs/tiny.yaml:{line}:15: error[spec-value]: model.arch: timm has no model named "
        "'resnet10tt'; did you mean timm/resnet10t" in result.err
    )


@pytest.mark.slow
def test_a_fixed_input_size_model_is_built_for_the_specs_image_size(tmp_path: Path) -> None:
    """A ViT takes 224x224 by default: it is built for model.image_size (16), so it trains,
    exports and evaluates instead of failing at its first batch."""
    spec = TINY_SPEC.replace("timm/resnet10t", "timm/vit_tiny_patch16_224").replace(
        "epochs: 2", "epochs: 1"
    )
    root = tiny_project(tmp_path, spec)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "data", "--stage", "train", "--stage", "export",
        "--stage", "evaluate", "--set", "evaluate.gates={}", cwd=root, timeout=600,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_local_weights_file_starts_the_model(tmp_path: Path) -> None:
    import timm
    import torch

    spec = TINY_SPEC.replace(
        "image_size: 16}", "image_size: 16, pretrained: true, weights: ../weights/start.pth}"
    ).replace("epochs: 2", "epochs: 1")
    root = project(tmp_path, spec, name="tiny.yaml")
    (root / "weights").mkdir()
    torch.save(
        timm.create_model("resnet10t", num_classes=7).state_dict(), root / "weights/start.pth"
    )
    write_images(root / "data" / "tiny")
    assert cvspec("build", cwd=root).code == 0
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert result.code == 0, result.err  # a 7-class head in the file: timm drops it


@pytest.mark.slow
def test_sweep_runs_every_point_and_names_the_best(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {train.optimizer.lr: [0.01, 0.0001]}\n"
    )
    root = tiny_project(tmp_path, spec)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=600)
    assert result.code == 0, result.err
    sweep = json.loads((root / "runs/tiny/train/sweep.json").read_text())
    assert [p["name"] for p in sweep["points"]] == ["point-000", "point-001"]
    assert [p["values"] for p in sweep["points"]] == [
        {"train.optimizer.lr": 0.01},
        {"train.optimizer.lr": 0.0001},
    ]
    best = max(sweep["points"], key=lambda p: p["metrics"]["val_accuracy"])
    assert sweep["best"] == best["name"] and sweep["best_run"] == best["run"]
    assert current_run(root).name == best["run"]
    assert f"best point: {best['name']} (train.optimizer.lr=" in result.err
    table = (root / "runs/tiny/train/sweep.md").read_text().splitlines()
    assert table[0] == "| point | train.optimizer.lr | val_accuracy | val_loss | train_loss | run |"
    assert len(table) == 4
    assert "[HYDRA]" not in result.out + result.err


@pytest.mark.slow
def test_sweep_breaks_a_tie_in_val_accuracy_by_val_loss_and_says_so(tmp_path: Path) -> None:
    # Both learning rates are too small to change a prediction of the 12 validation images in
    # one epoch: the points tie in accuracy, and the second lowers the validation loss more.
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {train.optimizer.lr: [0.0001, 0.0002]}\n"
    )
    root = tiny_project(tmp_path, spec)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=600)
    assert result.code == 0, result.err
    sweep = json.loads((root / "runs/tiny/train/sweep.json").read_text())
    first, second = (p["metrics"] for p in sweep["points"])
    assert first["val_accuracy"] == second["val_accuracy"]  # the tie this test is about
    assert second["val_loss"] < first["val_loss"]
    assert sweep["best"] == "point-001" and current_run(root).name == sweep["best_run"]
    assert sweep["ranked_by"] == [
        {"metric": "val_accuracy", "mode": "max"},
        {"metric": "val_loss", "mode": "min"},
    ]
    assert "highest val_accuracy, ties broken by lowest val_loss" in result.err


@pytest.mark.slow
def test_model_card_names_the_sweep_point_it_describes_by_its_values(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {train.optimizer.lr: [0.0001, 0.0002]}\n"
    )
    root = tiny_project(tmp_path, spec)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "data", "--stage", "train", "--stage", "export",
        "--stage", "evaluate", cwd=root, timeout=600,
    )  # fmt: skip
    assert "ok train (" in result.err and "evaluate" in result.err, result.err
    card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
    assert "- Sweep of 2 points; best: point-001 (train.optimizer.lr=0.0002) (see" in card


@pytest.mark.slow
def test_a_failed_sweep_point_keeps_the_finished_points_record(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {model.arch: [timm/nosuchnet9, timm/resnet10t]}\n"
    )
    root = tiny_project(tmp_path, spec)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=600)
    assert result.code == 2, result.err  # the failed point's own error, as before
    assert "Traceback" not in result.err
    assert "sweep point point-000 (model.arch=timm/nosuchnet9) failed: model.arch:" in result.err
    sweep = json.loads((root / "runs/tiny/train/sweep.json").read_text())
    assert sweep["best"] is None and sweep["best_run"] is None  # a failed sweep ships nothing
    [done] = sweep["points"]  # the point after the failure ran, and its metrics are kept
    assert done["values"] == {"model.arch": "timm/resnet10t"}
    assert "val_accuracy" in done["metrics"]
    [failed] = sweep["failed"]
    assert failed["name"] == "point-000" and "nosuchnet9" in failed["error"]
    table = (root / "runs/tiny/train/sweep.md").read_text()
    assert "| point-000 (failed) | timm/nosuchnet9 |" in table


@pytest.mark.slow
def test_sweep_runs_in_parallel_with_the_joblib_launcher(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1") + (
        "  sweep: {train.optimizer.lr: [0.01, 0.0001]}\n"
    )
    root = tiny_project(tmp_path, spec.replace("workers: 0", "workers: 1"))
    result = train_module(
        "--config-dir", "generated/tiny/train", "-m", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "+train.threads=1", cwd=root, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = json.loads((root / "runs/tiny/train/sweep.json").read_text())
    assert [p["name"] for p in sweep["points"]] == [
        "point-000 +train.threads=1",
        "point-001 +train.threads=1",
    ]
    for point in sweep["points"]:
        status = json.loads((root / "runs/tiny/train" / point["run"] / "run.json").read_text())
        assert status["state"] == "done"


def test_train_module_help_names_the_options() -> None:
    result = train_module("--help", cwd=REPO)
    assert result.returncode == 0
    for option in ("--config-dir", "--multirun", "--resume", "--run-id"):
        assert option in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_an_image_whose_pixels_do_not_decode_is_named(tmp_path: Path, workers: int) -> None:
    """Its header reads, so the index takes it; training then names it instead of a traceback,
    also when a DataLoader worker process hit it."""
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1").replace("workers: 0", f"workers: {workers}")
    root = tiny_project(tmp_path, spec)
    bad = root / "data/tiny/rows/003.png"
    bad.write_bytes(bad.read_bytes()[:80])  # header and a little of the pixel data
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert result.code == 2, result.err
    message = next(line for line in result.err.splitlines() if line.startswith("error: "))
    assert message.startswith("error: rows/003.png (under ")
    assert "does not decode: OSError: " in message and "--stage data" in message
    assert "Traceback" not in result.err and "internal error" not in result.err


@pytest.mark.slow
def test_an_excluded_image_is_left_out_of_training(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1").replace(
        "  splits:", "  exclude: [rows/003.png]  # truncated by a bad copy\n  splits:"
    )
    root = tiny_project(tmp_path, spec)
    bad = root / "data/tiny/rows/003.png"
    bad.write_bytes(bad.read_bytes()[:80])
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert result.code == 0, result.err
    config = (current_run(root) / "config.yaml").read_text()
    assert "rows/003.png" in config  # the run records what it left out


@pytest.mark.slow
def test_training_after_a_failed_data_stage_says_so(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("  splits:", "  quality: {min_images_per_class: 50}\n  splits:")
    root = tiny_project(tmp_path, spec)
    data = cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root, timeout=300)
    assert data.code == 1, data.err
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", "--set", "train.epochs=1",
        cwd=root, timeout=300,
    )  # fmt: skip
    assert result.code == 0, result.err
    said = " ".join(result.err.split())
    assert (
        "the data stage's last run failed (min_images_per_class; runs/tiny/data/report.md): "
        "training on the data as it is"
    ) in said, said


def identity(root: Path, processes: int = 1, **data: object) -> dict[str, Any]:
    """The run identity the trainer computes for the built tiny config with `data` keys set."""
    from omegaconf import OmegaConf

    from cvspec.train.config import settings
    from cvspec.train.data import load_index, usable
    from cvspec.train.trainer import _identity

    raw = OmegaConf.to_container(OmegaConf.load(root / "generated/tiny/train/config.yaml"))
    assert isinstance(raw, dict)
    raw.pop("hydra")
    raw["data"] |= data
    s = settings(OmegaConf.create(raw))
    index = load_index(s.data, root)
    records = {split: usable(index.split(split)) for split in ("train", "val")}
    return _identity(s, index, records, processes, root)


def test_run_id_follows_what_training_reads(tmp_path: Path) -> None:
    from cvspec.data.index import assign_split
    from cvspec.train.runs import run_id

    root = tiny_project(tmp_path)
    split = {p: assign_split(p, 0, 0.25, 0.25) for p in ("rows/000.png", "rows/003.png")}
    assert split == {"rows/000.png": "test", "rows/003.png": "train"}
    plain = identity(root)
    # one process, no relabel or exclude: the keys (and so the ids) runs had before
    assert sorted(plain) == ["data", "files", "model", "train"]
    assert "relabel" not in plain["data"] and "exclude" not in plain["data"]
    same = {run_id(plain)}
    same.add(run_id(identity(root, relabel=[["rows/000.png", "columns"]])))
    same.add(run_id(identity(root, exclude=["rows/000.png"])))
    assert len(same) == 1  # a test image's label or presence changes no training
    other = [
        identity(root, relabel=[["rows/003.png", "columns"]]),
        identity(root, exclude=["rows/003.png"]),
        identity(root, processes=2),
    ]
    assert len({run_id(i) for i in other} | same) == 4
    assert other[2] == {**plain, "processes": 2}


def test_a_class_excluded_away_or_without_training_images_is_in_the_run_id(
    tmp_path: Path,
) -> None:
    from cvspec.data.index import assign_split
    from cvspec.train.runs import run_id

    root = tiny_project(tmp_path)
    before = identity(root)
    assert "classes" not in before  # the labels imply the three classes: the id runs had
    assert assign_split("zigzag/001.png", 0, 0.25, 0.25) == "test"
    test_only = root / "data/tiny/zigzag"  # one image, in the test split: training never sees it
    test_only.mkdir()
    (test_only / "001.png").write_bytes((root / "data/tiny/rows/000.png").read_bytes())
    with_it, without = identity(root), identity(root, exclude=["zigzag/001.png"])
    assert with_it["files"] == without["files"] == before["files"]
    # four outputs, not the three the finished run has: another run, not a stale reuse
    assert with_it["classes"] == [*CLASSES, "zigzag"]
    assert without["classes"] == list(CLASSES)  # three outputs instead of four: another run
    assert len({run_id(before), run_id(with_it), run_id(without)}) == 3
    (test_only / "001.png").unlink()  # an empty class folder (classes: auto) is a class too
    assert identity(root)["classes"] == [*CLASSES, "zigzag"]


@pytest.mark.slow
def test_a_relabelled_or_excluded_test_image_reuses_the_run(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, TINY_SPEC.replace("epochs: 2", "epochs: 1"))
    first = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert first.code == 0, first.err
    run = current_run(root)
    for change in ("data.relabel={rows/000.png: columns}", "data.exclude=[rows/000.png]"):
        again = cvspec(
            "run", "specs/tiny.yaml", "--stage", "train", "--set", change, cwd=root, timeout=300
        )
        assert again.code == 0, again.err
        assert f"reused run {run.name}" in again.err and current_run(root) == run


@pytest.mark.slow
def test_a_corrected_label_is_trained_on_as_corrected(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1")
    root = tiny_project(tmp_path, spec)  # rows/003.png is a train image (see above)
    first = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert first.code == 0, first.err
    plain = current_run(root)
    fixed = spec.replace("  splits:", "  relabel: {rows/003.png: columns}\n  splits:")
    (root / "specs/tiny.yaml").write_text(fixed)
    assert cvspec("build", cwd=root).code == 0
    second = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert second.code == 0, second.err
    assert current_run(root) != plain  # another label is another run, not a reuse of the first
    config = (current_run(root) / "config.yaml").read_text()
    assert "rows/003.png" in config and "columns" in config  # the run records the correction
    from cvspec.train.config import compose, settings

    composed = settings(compose(root / "generated/tiny/train", []))
    assert composed.data.relabel == {"rows/003.png": "columns"}


@pytest.mark.slow
def test_more_workers_than_cpus_are_capped_quietly(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("epochs: 2", "epochs: 1").replace("workers: 0", "workers: 64")
    root = tiny_project(tmp_path, spec)
    result = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert result.code == 0, result.err
    assert "worker processes in total" not in result.err  # torch's warning past the CPU count


def test_a_fixed_size_model_that_cannot_run_at_the_specs_size_is_a_located_error() -> None:
    """CrossViT is built for any img_size but fails at its first forward pass at 32 px: the
    probe turns that into the model.image_size error, not an internal error mid-training."""
    from cvspec.errors import SpecValueError
    from cvspec.train.model import create

    with pytest.raises(SpecValueError) as caught:
        create("crossvit_tiny_240", 3, False, None, 32)
    assert caught.value.key == ("model", "image_size")
    assert "timm/crossvit_tiny_240 takes 240x240 images only" in str(caught.value)


def test_best_epoch_breaks_an_accuracy_tie_by_the_lower_validation_loss() -> None:
    from cvspec.train.trainer import _as_score, epoch_score

    history = [
        {"val_accuracy": 0.9, "val_loss": 0.30, "train_loss": 0.5},
        {"val_accuracy": 1.0, "val_loss": 0.20, "train_loss": 0.3},
        {"val_accuracy": 1.0, "val_loss": 0.05, "train_loss": 0.1},  # same accuracy, surer
        {"val_accuracy": 1.0, "val_loss": 0.09, "train_loss": 0.05},
    ]
    assert max(range(4), key=lambda i: epoch_score(history[i])) == 2
    no_val = [{"train_loss": 0.4}, {"train_loss": 0.2}, {"train_loss": 0.3}]
    assert max(range(3), key=lambda i: epoch_score(no_val[i])) == 1
    # a checkpoint from before kept the accuracy alone: an equal accuracy does not beat it
    assert not epoch_score(history[1]) > _as_score(1.0)
    assert epoch_score(history[1]) > _as_score(0.95)


def test_weight_decay_spares_biases_norm_layers_and_the_models_no_weight_decay_names() -> None:
    """As timm's create_optimizer_v2: decaying batch-norm scales and biases (or a ViT's
    position embedding) towards zero only hurts; the conv and linear weights are decayed."""
    from types import SimpleNamespace

    import torch

    from cvspec.train.model import create
    from cvspec.train.optim import optimizer

    for arch, spared in (("resnet10t", "bn1.weight"), ("vit_tiny_patch16_224", "pos_embed")):
        model = create(arch, 3, False, None, 32)
        opt = optimizer(model, SimpleNamespace(name="adamw", lr=1e-3, weight_decay=0.05))
        decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
        named = dict(model.named_parameters())
        assert len(decay_of) == len(named)  # every parameter trains
        assert decay_of[id(named[spared])] == 0.0
        biases = [n for n in named if n.endswith(".bias")]
        assert biases and all(decay_of[id(named[n])] == 0.0 for n in biases)
        kept = [n for n, p in named.items() if p.ndim > 1 and n not in ("pos_embed", "cls_token")]
        assert kept and all(decay_of[id(named[n])] == 0.05 for n in kept)
    sgd = optimizer(
        torch.nn.Linear(2, 2), SimpleNamespace(name="sgd", lr=0.1, weight_decay=0.0, momentum=0.9)
    )
    assert sum(len(g["params"]) for g in sgd.param_groups) == 2
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9  # as the schema says


def test_a_run_started_with_one_parameter_group_says_how_to_train_it_again(tmp_path: Path) -> None:
    """A last.pt written before weight decay spared biases holds one optimiser group: resuming
    it is a clear error naming the run folder, not torch's ValueError."""
    from types import SimpleNamespace

    import torch

    from cvspec.errors import CvspecError
    from cvspec.train.optim import optimizer
    from cvspec.train.runs import RunDir
    from cvspec.train.trainer import _restore

    model = torch.nn.Linear(2, 2)
    old = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine = SimpleNamespace(
        model=model,
        optimizer=optimizer(model, SimpleNamespace(name="adamw", lr=1e-3, weight_decay=0.01)),
    )
    state = {"model": model.state_dict(), "optimizer": old.state_dict()}
    with pytest.raises(CvspecError, match=r"delete .*abc123 to train it again"):
        _restore(engine, state, RunDir(tmp_path / "abc123"))  # type: ignore[arg-type]


def test_training_from_weights_normalises_as_the_weights_expect(tmp_path: Path) -> None:
    """A ViT's timm weights were trained on inputs normalised with mean and std 0.5: starting
    from them, training (and so preprocess.json, evaluation and serving) normalises the same
    way, as timm's resolve_data_config would; from scratch, ImageNet's mean and std."""
    from cvspec.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from cvspec.train.config import compose, settings
    from cvspec.train.trainer import preprocess

    spec = TINY_SPEC.replace("timm/resnet10t", "timm/vit_tiny_patch16_224")
    root = tiny_project(tmp_path, spec, per_class=1)
    (root / "weights").mkdir()
    (root / "weights/vit.pth").write_bytes(b"")
    config = root / "generated/tiny/train"
    scratch = preprocess(settings(compose(config, [])))
    assert (scratch.mean, scratch.std) == (IMAGENET_MEAN, IMAGENET_STD)
    tuned = preprocess(settings(compose(config, ["model.weights=../weights/vit.pth"])))
    assert (tuned.mean, tuned.std, tuned.image_size) == ((0.5,) * 3, (0.5,) * 3, 16)
    resnet = preprocess(
        settings(compose(config, ["model.name=resnet10t", "model.weights=../weights/vit.pth"]))
    )
    assert (resnet.mean, resnet.std) == (IMAGENET_MEAN, IMAGENET_STD)


def test_each_schedule_follows_its_schema_description() -> None:
    """The learning-rate factor per step, as train.schedule's description says it."""
    from cvspec.train.optim import lr_factor

    total = 300
    assert [lr_factor(s, total, 0, "constant") for s in (0, 299)] == [1.0, 1.0]
    assert lr_factor(0, total, 0, "cosine") == 1.0 and lr_factor(299, total, 0, "cosine") < 1e-3
    steps = [lr_factor(s, total, 0, "step") for s in (0, 99, 100, 199, 200, 299)]
    assert steps == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(0, total, 0, "onecycle") == pytest.approx(1 / 90)  # 30% warmup
    assert lr_factor(89, total, 0, "onecycle") == 1.0
    assert lr_factor(0, total, 30, "onecycle") == lr_factor(0, total, 30, "cosine") == 1 / 30
