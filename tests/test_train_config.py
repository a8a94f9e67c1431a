"""The training configuration generator: Hydra composes it; ultralytics accepts its keys."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, cvspec, project
from ruamel.yaml import YAML

DETECTION_SPEC = """\
cvspec: 1
project: {name: boxes}
task: detection
data: {path: ../data/boxes, classes: [cat, dog], splits: {val: 0.2, test: 0.1}}
model: {arch: ultralytics/yolov8n.yaml, image_size: 96}
data_augment_placeholder: null
"""


def _require(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing: {install}")
        pytest.skip(f"{module} not installed ({install})")


def test_hydra_composes_the_config_and_each_sweep_point(tmp_path: Path) -> None:
    _require("hydra", "pip install -e '.[dev]'")
    from hydra import compose, initialize_config_dir

    spec = (
        MINIMAL_SPEC + "train:\n  epochs: 3\n  sweep: {train.optimizer.lr: [0.1, 0.01], "
        "train.batch_size: [8, 16]}\n"
    )
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    config_dir = root / "generated/demo/train"
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        base = compose(config_name="config")
        assert base.train.epochs == 3
        assert base.model.name == "resnet18" and base.model.image_size == 32
        assert base.data.root == "data/demo"
        points = sorted(p.stem for p in (config_dir / "experiment").glob("*.yaml"))
        assert points == ["point-000", "point-001", "point-002", "point-003"]
        seen = set()
        for point in points:
            cfg = compose(config_name="config", overrides=[f"experiment={point}"])
            seen.add((cfg.train.batch_size, cfg.train.optimizer.lr))
            assert cfg.train.epochs == 3
        assert seen == {(8, 0.1), (8, 0.01), (16, 0.1), (16, 0.01)}
        tweaked = compose(config_name="config", overrides=["train.epochs=7"])
        assert tweaked.train.epochs == 7


def test_detection_config_uses_only_keys_ultralytics_accepts(tmp_path: Path) -> None:
    spec = DETECTION_SPEC.replace("data_augment_placeholder: null\n", "")
    spec = spec.replace(
        "splits: {val: 0.2, test: 0.1}}",
        "splits: {val: 0.2, test: 0.1},\n"
        "  augment: [{hflip: {p: 0.3}}, {mosaic: {p: 0.5}}, {affine: {}}]}",
    )
    root = project(tmp_path, spec)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    yaml = YAML(typ="safe")
    data = yaml.load((root / "generated/boxes/train/data.yaml").read_text())
    assert data == {  # one images/ folder split by ratio: the trainer writes the split lists
        "path": "data/boxes",
        "cvspec_ratio_splits": {"images": "images", "val": 0.2, "test": 0.1, "seed": 0},
        "nc": 2,
        "names": {0: "cat", 1: "dog"},
    }
    args = yaml.load((root / "generated/boxes/train/args.yaml").read_text())
    assert args["imgsz"] == 96 and args["fliplr"] == 0.3 and args["mosaic"] == 0.5
    assert args["flipud"] == 0.0  # not declared: off
    assert args["data"] == "generated/boxes/train/data.yaml"
    _require("ultralytics", "pip install --no-deps ultralytics")
    spec_ = importlib.util.find_spec("ultralytics")
    assert spec_ is not None and spec_.submodule_search_locations
    default = Path(next(iter(spec_.submodule_search_locations))) / "cfg" / "default.yaml"
    defaults = yaml.load(default.read_text())
    accepted = set(defaults)
    assert set(args) <= accepted, f"keys ultralytics does not know: {set(args) - accepted}"
    from cvspec.generate.builtin.train_config import CLOSE_MOSAIC

    assert defaults["close_mosaic"] == CLOSE_MOSAIC  # ultralytics' default, stated...
    assert args["close_mosaic"] == min(CLOSE_MOSAIC, args["epochs"])  # ...capped at the epochs
    from cvspec.generate.builtin.train_config import ULTRALYTICS_LRF

    assert defaults["lrf"] == ULTRALYTICS_LRF
    assert (args["cos_lr"], args["lrf"]) == (True, ULTRALYTICS_LRF)  # the default: cosine


def test_a_constant_detection_schedule_keeps_the_learning_rate(tmp_path: Path) -> None:
    """ultralytics decays lr0 to lr0 * lrf; without cos_lr on a straight line: constant is a
    line to lr0 itself, not ultralytics' default decay to 1 %."""
    spec = DETECTION_SPEC.replace("data_augment_placeholder: null\n", "")
    root = project(tmp_path, spec)
    result = cvspec("build", "--set", "train.schedule=constant", cwd=root)
    assert result.code == 0, result.err
    args = YAML(typ="safe").load((root / "generated/boxes/train/args.yaml").read_text())
    assert (args["cos_lr"], args["lrf"]) == (False, 1.0)


def test_a_detectors_weights_file_is_named_from_the_repository_root(tmp_path: Path) -> None:
    spec = DETECTION_SPEC.replace("data_augment_placeholder: null\n", "")
    line = next(x for x in spec.splitlines() if x.startswith("model:"))
    spec = spec.replace(line, line.rstrip("}") + ", pretrained: true, weights: ../w/start.pt}")
    root = project(tmp_path, spec)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    args = YAML(typ="safe").load((root / "generated/boxes/train/args.yaml").read_text())
    assert args["model"] == "w/start.pt"  # relative to the spec in specs/, as the spec says


def test_example_specs_generate_both_kinds() -> None:
    assert (REPO / "generated/digits/train/config.yaml").is_file()
    assert (REPO / "generated/shapes/train/args.yaml").is_file()


def test_spec_text_with_a_dollar_brace_reaches_training_as_written(tmp_path: Path) -> None:
    """Hydra resolves `${...}` in its config: a folder or pattern the spec names with one (a
    literal: the spec escapes its own references as `\\${`) must not become another value."""
    _require("hydra", "pip install -e '.[dev]'")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    spec = MINIMAL_SPEC.replace(
        "data: {path: ../data/demo}",
        "data:\n"
        "  path: '../d\\${data.format}'\n"
        "  exclude: ['c/\\${data.format}', '\\${train.epochs}*']\n"
        "  relabel: {'a\\${b}.png': cat, 'x/${model.name}.png': dog}\n"
        "  classes: [cat, dog]",
    )
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    with initialize_config_dir(config_dir=str(root / "generated/demo/train"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config"), resolve=True)
    assert isinstance(cfg, dict)
    assert cfg["data"]["root"] == "d${data.format}"
    assert cfg["data"]["exclude"] == ["c/${data.format}", "${train.epochs}*"]
    assert cfg["data"]["relabel"] == [["a\\${b}.png", "cat"], ["x/${model.name}.png", "dog"]]


@pytest.mark.parametrize(
    "text", ["a${b}", "a\\${b}", "a\\\\${b}c${", "x\\", "${", "a\\b${x}\\", "${x}${y}", "plain"]
)
def test_hydra_literal_reads_back_as_the_text(text: str) -> None:
    _require("omegaconf", "pip install -e '.[dev]'")
    from omegaconf import OmegaConf

    from cvspec.generate.builtin.train_config import hydra_literal

    cfg = OmegaConf.create({"value": hydra_literal(text), "b": "B", "x": "X", "y": "Y"})
    assert cfg.value == text
